"""The error every dataset raises for data that do not fit (kept apart so that every data module can use it)."""


class DatasetError(ValueError):
    """The data on disk do not fit the layout the dataset expects; the message says where and what. ``path`` names
    the file when the error is about one file."""

    def __init__(self, message, path=None):
        super().__init__(message)
        self.path = path
