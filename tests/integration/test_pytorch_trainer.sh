#!/bin/sh
# test_pytorch_trainer.sh - the PyTorch CNN example's trainer alone, one
# site, a few hundred images (tests/integration/pytorch_trainer_tests.py);
# skipped without Debian's python3-torch.
if [ ! -x /usr/bin/python3 ]; then
  echo "test_pytorch_trainer: skipped: no /usr/bin/python3"
  exit 77
fi
exec /usr/bin/python3 tests/integration/pytorch_trainer_tests.py "$@"
