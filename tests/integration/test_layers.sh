#!/bin/sh
# test_layers.sh - the include-direction check (scripts/check_layers.py)
# passes on the tree, and refuses each kind of wrong include when one is
# planted in a copy of it.
. "$(dirname "$0")/lib.sh"
CHECK="python3 scripts/check_layers.py"

expect 0 "0 wrong includes" "the tree's includes follow the layers" -- $CHECK .

# a copy of the library and programs to plant wrong includes in
copy() {
  rm -rf "$T/tree" && mkdir -p "$T/tree"
  cp -r shared coordinator client sim "$T/tree/" && [ -d include ] && cp -r include "$T/tree/"
  return 0
}
plant() { # FILE LINE: append LINE to FILE in the copy
  printf '%s\n' "$2" >>"$T/tree/$1"
}

copy; plant shared/base/alloc.c '#include "round/engine.h"'
expect 1 "shared/base/alloc.c:.*layer base may not include round" \
  "base including round (upward) is refused, naming the file and line" -- $CHECK "$T/tree"

copy; plant shared/ml/model.c '#include "config/config.h"'
expect 1 "layer ml may not include config" "ml including config is refused" -- $CHECK "$T/tree"

copy; plant shared/wire/safetensors.c '#include "data/data.h"'
expect 1 "layer wire may not include data" "wire and data are peers: neither includes the other" \
  -- $CHECK "$T/tree"

copy; plant shared/agg/agg_fedavg.c '#include "error.h"'
expect 1 "names its folder" "a library include without its folder is refused" -- $CHECK "$T/tree"

copy; plant shared/round/engine.c '#include "coordinator/coordinator.h"'
expect 1 "not a layer of the library" "the library including a program is refused" -- $CHECK "$T/tree"

copy; plant client/client.c '#include "coordinator/store.h"'
expect 1 "another program's header" "a program including another program's header is refused" \
  -- $CHECK "$T/tree"

copy; printf 'int x;\n' >"$T/tree/shared/loose.c"
expect 1 "lives in a layer's folder" "a source file outside the layers' folders is refused" \
  -- $CHECK "$T/tree"

copy; plant shared/config/config.c '#include "round/engine.h"'
expect 0 "0 wrong includes" "config (the top layer) may include round" -- $CHECK "$T/tree"

summary test_layers
