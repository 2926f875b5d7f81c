"""Stand-in for the get-pip.py that ansible-test downloads from a host unreachable here.

ansible-test runs this file as `__main__` inside a fresh venv with pip's options and the
packages to install. The venv gets pip from the wheel that CPython's ensurepip bundles;
that pip then installs the requested packages from the configured index (PyPI).
ansible-test runs pip with a trimmed environment (no PIP_CERT), so the machine's CA bundle
is written into the venv's own pip.conf, which every later pip call in that venv reads.
ensurepip leaves PIP_CONFIG_FILE pointing at os.devnull: unset before pip runs.
get-pip's own flags (--no-setuptools, --no-wheel) mean nothing to `pip install`: dropped.
"""

import ensurepip
import os
import subprocess
import sys

GET_PIP_ONLY_FLAGS = {"--no-setuptools", "--no-wheel"}
CA_BUNDLE = os.environ.get("PIP_CERT") or "/etc/ssl/certs/ca-certificates.crt"

if os.path.exists(CA_BUNDLE):
    with open(os.path.join(sys.prefix, "pip.conf"), "w", encoding="utf-8") as conf:
        conf.write(f"[global]\ncert = {CA_BUNDLE}\n")
ensurepip.bootstrap(upgrade=True)
os.environ.pop("PIP_CONFIG_FILE", None)  # ensurepip sets it to os.devnull for its own run
pip_args = [arg for arg in sys.argv[1:] if arg not in GET_PIP_ONLY_FLAGS]
sys.exit(subprocess.call([sys.executable, "-m", "pip", "install", *pip_args]))
