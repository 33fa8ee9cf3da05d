#!/usr/bin/env python3
"""Checks the vendored fideslang key lists, and every key the declaration uses, against the
taxonomy shipped by the real `fideslang` package (pip install fideslang==3.1.4)."""
import pathlib
import sys
import tomllib

import fideslang

root = pathlib.Path(__file__).resolve().parent.parent
tax = fideslang.DEFAULT_TAXONOMY
real = {
    "data-categories": sorted(c.fides_key for c in tax.data_category),
    "data-uses": sorted(u.fides_key for u in tax.data_use),
    "data-subjects": sorted(s.fides_key for s in tax.data_subject),
}
failed = False
for name, keys in real.items():
    path = root / f"crates/policy/taxonomy/fideslang-3.1.4-{name}.txt"
    vendored = sorted(l.strip() for l in path.read_text().splitlines() if l.strip())
    if vendored != keys:
        print(f"{path.name} differs from fideslang {fideslang.__version__}: "
              f"missing {sorted(set(keys) - set(vendored))}, extra {sorted(set(vendored) - set(keys))}")
        failed = True

decl = tomllib.loads((root / "policy/custos-app.toml").read_text())
for c in decl.get("categories", []):
    if c["key"] not in real["data-categories"]:
        print(f"categories[{c['key']}] is not a fideslang data category")
        failed = True
for p in decl.get("purposes", []):
    if p["data_use"] not in real["data-uses"]:
        print(f"purposes[{p['id']}].data_use `{p['data_use']}` is not a fideslang data use")
        failed = True
if failed:
    sys.exit(1)
print(f"taxonomy: {sum(map(len, real.values()))} keys match fideslang {fideslang.__version__}; "
      f"{len(decl.get('categories', []))} categories and {len(decl.get('purposes', []))} purposes use real keys")
