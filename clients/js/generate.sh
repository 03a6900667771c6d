#!/bin/sh
# Regenerate src/gen/ from ../../protos with protoc + @bufbuild/protoc-gen-es (v2: messages and
# service descriptors that @connectrpc/connect 2.x consumes directly). The output is committed.
set -eu
cd "$(dirname "$0")"
rm -rf src/gen
mkdir -p src/gen
protoc -I ../../protos \
  --plugin=protoc-gen-es=node_modules/.bin/protoc-gen-es \
  --es_out=src/gen --es_opt=target=ts,import_extension=js \
  ../../protos/centre/agent/v1/*.proto
