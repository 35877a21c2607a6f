"""Named exceptions. Every problem caused by the user's input is a UsageError: the command-line
entry points print its message as one line and exit with status 2, before Ray starts."""


class UsageError(ValueError):
    """Bad input from the user (arguments, data files, model paths, settings)."""


class AssetError(UsageError):
    """An offline asset is missing, cannot be fetched, or fails its sha256 check."""


class DataError(UsageError):
    """A data set is missing, malformed, or does not fit the task."""


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite: the trial stops instead of training on garbage."""


class ExpertError(RuntimeError):
    """An expert could not answer: an endpoint that stayed down, refused the key, or answered something that
    names no label. Its message says what was asked, what came back, and what was kept (cached answers)."""
