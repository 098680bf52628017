#!/usr/bin/env bash
# Regenerate the shipped models in models/ with nmlsim's own exporters (never hand-edit them).
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf models/ei_hh models/coba_lif
nmlsim export ei_hh models/ei_hh --to neuroml,neuroml-h5,sonata --seed 1
nmlsim export coba_lif models/coba_lif --to neuroml,neuroml-h5,sonata --seed 1
rm -rf models/thalamus
nmlsim export thalamus models/thalamus --to neuroml,sonata --seed 1
rm -rf models/noisy_hh
nmlsim export noisy_hh models/noisy_hh --to neuroml --seed 1
