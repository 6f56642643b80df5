"""Several trainings in the processes of one torchrun launch, one after the other (tests/test_distributed.py):

    python -m torch.distributed.run --standalone --nproc_per_node 2 tests/ddp_trainings.py '[[ARGS...], [ARGS...]]'

Each list is the arguments of one ``train_DF.py`` run; every process joins and leaves the process group once per
training, as ``train_DF.py`` does. Exits with the first nonzero exit status."""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import train_DF  # noqa: E402  (after the repository root is on the path)


def main(argvs):
    for argv in argvs:
        status = train_DF.main(argv)
        if status:
            return status
    return 0


if __name__ == '__main__':
    sys.exit(main(json.loads(sys.argv[1])))
