"""The error every dataset raises for data that do not fit (kept apart so that every data module can use it), and
the checked reading of the JSON side files that come with a dataset."""
import json
import os


class DatasetError(ValueError):
    """The data on disk do not fit the layout the dataset expects; the message says where and what. ``path`` names
    the file when the error is about one file."""

    def __init__(self, message, path=None):
        super().__init__(message)
        self.path = path


def read_json_file(path, label, max_bytes):
    """The JSON content of the side file ``path`` (``label``: how messages name it, e.g. '--split_file x.json'):
    a regular file (a FIFO or a device would hang the read), at most ``max_bytes`` bytes, UTF-8 (a byte-order mark
    is read past); DatasetError naming it otherwise."""
    if not os.path.isfile(path):
        kind = 'no such file' if not os.path.exists(path) else 'not a regular file (a folder, a FIFO, a device)'
        raise DatasetError(f'{label}: {kind}', path=path)
    if os.path.getsize(path) > max_bytes:
        raise DatasetError(f'{label}: {os.path.getsize(path)} bytes, far more than such a file holds', path=path)
    try:
        with open(path, encoding='utf-8-sig') as handle:
            return json.load(handle)
    except (OSError, ValueError) as err:
        raise DatasetError(f'{label}: cannot read it as JSON ({err})', path=path) from err
