"""Rule model, loading with FILE:LINE:COL errors, and condition compilation."""
