"""Tables for scripts/bench-lambda.sh.

  lambda_report.py sizes DIR LABEL NAME...    bootstrap sizes under DIR/NAME/, and zipped
  lambda_report.py ratios JSON NAME...        cold starts (lambda_cold_start.py --json) as
                                              ratios to hello_lambda
"""

import io
import json
import sys
import zipfile
from pathlib import Path


def sizes(base, label, names):
    hello = None
    for name in names:
        binary = Path(base) / name / "bootstrap"
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
            z.write(binary, "bootstrap")
        size, zipped = binary.stat().st_size, len(buf.getvalue())
        hello = hello or size
        print(f"{label:8} {name:22} {size / 2**20:6.1f} MiB   zip {zipped / 2**20:5.1f} MiB   "
              f"x{size / hello:.1f} of {names[0]}")


def ratios(path, names):
    """Medians and ratios to the hello-world on #[tokio::main]'s multi-threaded runtime (the
    target's reference) and, in the last column, to the same hello-world on the current-thread
    runtime the functions use."""
    r = json.loads(Path(path).read_text())
    hello = r["hello_lambda"]
    ct = r.get("hello_lambda (current-thread)")
    print(f"{'function':30} {'init ms':>8} {'x hello':>8} {'first event ms':>15} {'x hello':>8}"
          f" {'init x hello (current-thread)':>30}")
    for name in ["hello_lambda", *([] if ct is None else ["hello_lambda (current-thread)"]), *names]:
        f = r[name]
        vs_ct = f"{f['init_ms'] / ct['init_ms']:30.2f}" if ct else ""
        print(f"{name:30} {f['init_ms']:8.2f} {f['init_ms'] / hello['init_ms']:8.2f} "
              f"{f['first_event_ms']:15.2f} {f['first_event_ms'] / hello['first_event_ms']:8.2f} {vs_ct}")


if __name__ == "__main__":
    command, *rest = sys.argv[1:]
    if command == "sizes":
        sizes(rest[0], rest[1], rest[2:])
    elif command == "ratios":
        ratios(rest[0], rest[1:])
    else:
        sys.exit(__doc__)
