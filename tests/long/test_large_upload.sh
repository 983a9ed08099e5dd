#!/bin/sh
# test_large_upload.sh - one 500 MiB update (a tensor job's F32 tensor, one
# site, one round) cut at 60% by the fault proxy resumes and completes:
# the committed model is byte-identical to the uncut run's and less than
# half of the update is sent again (the bytes the proxy forwarded from the
# client, printed). tests/integration/large_upload_tests.py with
# LARGE_UPLOAD_MB=500; needs about 6 GiB of memory and 3 GiB of disk.
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT" || exit 1
export LARGE_UPLOAD_MB=${LARGE_UPLOAD_MB:-500}
export LARGE_UPLOAD_SITES=${LARGE_UPLOAD_SITES:-1}
export LARGE_UPLOAD_ROUNDS=${LARGE_UPLOAD_ROUNDS:-1}
export LARGE_UPLOAD_KILL=${LARGE_UPLOAD_KILL:-0}
exec sh tests/integration/test_large_upload.sh test_cut_and_resume
