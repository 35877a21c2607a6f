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
