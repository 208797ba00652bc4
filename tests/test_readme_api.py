"""The README documents the HTTP API from its OpenAPI description: the operations table is
generated from schema/openapi.json (scripts/openapi_readme.py) and must match it."""

import importlib.util
import json

from serve_support import ROOT

spec = importlib.util.spec_from_file_location("openapi_readme", ROOT / "scripts" / "openapi_readme.py")
openapi_readme = importlib.util.module_from_spec(spec)
spec.loader.exec_module(openapi_readme)


def test_the_readme_operations_table_is_the_descriptions():
    doc = json.loads(openapi_readme.DESCRIPTION.read_text())
    readme = openapi_readme.README.read_text()
    assert openapi_readme.render(readme, doc) == readme, \
        "README.md's operations table is out of date: run scripts/openapi_readme.py"


def test_the_table_has_a_row_for_every_operation():
    doc = json.loads(openapi_readme.DESCRIPTION.read_text())
    rows = [line for line in openapi_readme.table(doc).splitlines()[2:]]
    operations = sum(1 for item in doc["paths"].values() for m in openapi_readme.METHODS if m in item)
    assert len(rows) == operations
