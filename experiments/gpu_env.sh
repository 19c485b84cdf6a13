# Sourced by the GPU scripts (experiments/gpu_*.sh, benchmarks/gpu_*.sh) in the repository
# root; `gpu_env` then installs the library and the repository's experiments and benchmarks
# packages and puts their `optnet` command first on PATH.
#
# The GPU machine has python3 with torch (CUDA) and no internet, so the three packages go in
# editable, without dependencies and without build isolation: the image's own setuptools
# builds them (the version their pyproject.toml files ask for, plus `wheel` where setuptools
# is older than 70.1), nothing is downloaded. They go into a virtual environment that sees the image's packages
# (--system-site-packages): the image's Python stays as it is, and pip does not refuse an
# "externally managed" one. Wheels carried in .whl/ (peers such as qpth, cvxpy) are installed
# into it first.
# Fallback where the install fails for want of setuptools or wheel: carry their wheels in
# .whl/ too (`pip download setuptools wheel -d .whl` on a machine with internet).
# Environment: PYTHON (the image's interpreter, default python3), OPTNET_ENV (the virtual
# environment's folder, default /tmp/optnet-env). Afterwards PYTHON is the environment's.

gpu_env() {
    local env=${OPTNET_ENV:-/tmp/optnet-env}
    if [ ! -x "$env/bin/python" ]; then
        # --without-pip: the image's pip, seen through the system site packages, installs here
        "${PYTHON:-python3}" -m venv --system-site-packages --without-pip "$env" || return 1
    fi
    if ls .whl/*.whl >/dev/null 2>&1; then
        "$env/bin/python" -m pip install -q --no-index --no-deps --no-cache-dir .whl/*.whl \
            || echo "WARNING: the wheels in .whl/ did not install"
    fi
    if ! "$env/bin/python" -m pip install -q --no-index --no-deps --no-build-isolation \
        -e . -e ./experiments -e ./benchmarks; then
        echo "ERROR: optnet and its experiments and benchmarks did not install (see the" \
            "fallback in experiments/gpu_env.sh)"
        return 1
    fi
    export PATH="$env/bin:$PATH" PYTHON="$env/bin/python"
}
