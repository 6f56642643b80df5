#!/usr/bin/env bash
# Mutation testing (mutmut 3) of the code whose mistakes the tests must catch: the losses, the metrics and the
# pairing code of both datasets, run against the fast tier (-m "not slow") of the test files written for them
# (tests/test_losses.py, test_metrics.py, test_datasets.py, test_evaluation.py; the whole fast tier costs minutes per
# mutant, as end-to-end tests reach these functions too).
#
#   bash scripts/mutation.sh                # every target below; prints mutmut's summary and survivors
#   bash scripts/mutation.sh 'util.metrics.*'   # only the mutants whose names match
#   VFD_MUTATION_TESTS=tests/test_losses.py bash scripts/mutation.sh 'models.losses.*'   # against one test file
#
# It works in a scratch copy of the working tree (mutmut writes a mutants/ folder beside the code), so the checkout
# is never touched; the copy (kept between runs) is $VFD_MUTATION_DIR (default /tmp/vfd-mutation) for `mutmut browse` or
# `mutmut show NAME` there. Needs the set-up of scripts/run_tests.sh (.venv); installs mutmut into it.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(pwd)"
work="${VFD_MUTATION_DIR:-/tmp/vfd-mutation}"
# shellcheck disable=SC1091
source .venv/bin/activate
python -m pip install -q 'mutmut==3.8.1'
mkdir -p "$work"     # kept between runs: mutmut re-tests only what changed (delete it for a fresh start)
# tracked and new files as they are now, without .git: the suite's working-tree check stands aside outside a checkout
git ls-files -co --exclude-standard -z | tar -C "$root" --null -T - -cf - | tar -C "$work" -xf -
cat > "$work/setup.cfg" <<CFG
[mutmut]
source_paths=
    models/
    util/
    data/
only_mutate=
    models/losses.py
    util/metrics.py
    data/DFDC_dataset.py
    data/Vox_image_dataset.py
also_copy=
    options/
    scripts/
    prep/
    docs/
    Dataset/
    .ci/
    train_DF.py
    test_DF.py
    pytest.ini
    README.md
    requirements.txt
    requirements-dev.txt
pytest_add_cli_args=
    -p
    no:randomly
    -p
    no:cacheprovider
    -m
    not slow
pytest_add_cli_args_test_selection=
$(for t in ${VFD_MUTATION_TESTS:-tests/test_losses.py tests/test_metrics.py tests/test_datasets.py tests/test_evaluation.py}; do
    echo "    $t"; done)
# a forked child's first torch calls cost CPU time that the tests' recorded durations do not show; without this
# margin healthy mutants die of the CPU-time limit (SIGXCPU) and count as timeouts
timeout_constant=30
# each mutant's tests run in a child forked from a server that imported the suite but ran no torch operation: a
# child forked from a process whose torch thread pools have started can hang on them forever
process_isolation=forkserver
CFG
export OMP_NUM_THREADS=1     # one thread per child (mutmut runs one child per core)
cd "$work"
# mutmut's own time limit does not reach the children of its fork server, so a mutant that loops forever (e.g. a
# search whose position no longer advances) would hold a core until the run is killed: end any child that has used
# more than VFD_MUTATION_CPU_LIMIT seconds of CPU (default 60; a healthy mutant here takes 1 to 30). mutmut reports
# such a mutant as "segfault" (killed by a signal): the tests did not pass, the mutant is caught.
limit="${VFD_MUTATION_CPU_LIMIT:-60}"
(
    set +e +o pipefail    # a child may end between two questions: keep watching
    while sleep 10; do
        for main in $(pgrep -f 'mutmut run'); do
            for server in $(pgrep -P "$main"); do           # the fork server; its children each test one mutant
                for child in $(pgrep -P "$server"); do
                    used=$(ps -o times= -p "$child" | tr -d ' ')
                    if [ -n "$used" ] && [ "$used" -gt "$limit" ]; then
                        echo "mutation.sh: ended a test child after ${used} s of CPU (a mutant that loops)" >&2
                        kill -9 "$child"
                    fi
                done
            done
        done
    done
) &
watchdog=$!
trap 'kill "$watchdog" 2> /dev/null' EXIT
if [ $# -gt 0 ]; then
    mutmut run "$@"
else
    # the losses and the metrics whole; of the datasets, the functions that pair voices with faces
    mutmut run 'models.losses.*' 'util.metrics.*' \
        'data.DFDC_dataset.xǁDFDCDatasetǁ__init__*' 'data.DFDC_dataset.xǁDFDCDatasetǁ_setup_training*' \
        'data.DFDC_dataset.xǁDFDCDatasetǁload*' \
        'data.DFDC_dataset.xǁDFDCDatasetǁ_training_item*' 'data.DFDC_dataset.xǁDFDCDatasetǁ_offset*' \
        'data.DFDC_dataset.x__window_key*' 'data.DFDC_dataset.x_original_sampling*' \
        'data.Vox_image_dataset.xǁVoxImageDatasetǁsample_negatives*' 'data.Vox_image_dataset.xǁVoxImageDatasetǁload*' \
        'data.Vox_image_dataset.xǁVoxImageDatasetǁ_pair*' 'data.Vox_image_dataset.xǁVoxImageDatasetǁ_negative_face*' \
        'data.Vox_image_dataset.x_voice_owner*' 'data.Vox_image_dataset.x_scan_clips*' \
        'data.Vox_image_dataset.x_interleave*' 'data.Vox_image_dataset.x_split_identities*'
fi
mutmut results
