"""schemas/ is generated from the models and must stay in sync with them."""

import json
from pathlib import Path

from anomalyd.schemas import generate, write


def test_committed_schemas_are_up_to_date():
    stale = write(Path("schemas"), check=True)
    assert stale == [], f"stale: {stale}; run `anomalyd schemas`"


def test_rule_schema_accepts_the_shipped_rules():
    import jsonschema
    import yaml

    schema = json.loads(generate()["rules.schema.json"])
    for f in Path("rules").glob("*.yaml"):
        jsonschema.validate(yaml.safe_load(f.read_text()), schema)
