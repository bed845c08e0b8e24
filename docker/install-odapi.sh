#!/bin/sh
# Install odapi from /src (setup.py runs protoc) into an overlay tree at /overlay that mirrors
# where the files belong in the venv; the image's final stage copies it over the dependencies.
set -eu
venv=/opt/odapi/venv
"$venv/bin/pip" install --no-deps --no-build-isolation --no-cache-dir --target /tmp/app /src
PYTHONPATH=/tmp/app "$venv/bin/python" -c "import odapi.protos.string_int_label_map_pb2"
site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')
mkdir -p "/overlay$site" "/overlay$venv/bin"
mv /tmp/app/odapi /tmp/app/odapi-*.dist-info "/overlay$site/"
mv /tmp/app/bin/odapi "/overlay$venv/bin/odapi"
rm -rf /tmp/app
