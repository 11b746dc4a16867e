#!/bin/sh
# Regenerates the committed Python code from control.proto (run from the repository root).
set -e
python3 -m grpc_tools.protoc -I . --python_out=. --pyi_out=. --grpc_python_out=. isula_build/api/control.proto
