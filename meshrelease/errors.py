"""One exception type per kind of bad input.

Every error raised on purpose by meshrelease derives from :class:`MeshreleaseError`.
The CLI turns it into one line on stderr and the exit code of its class; nothing else
in the package prints or exits.
"""

from __future__ import annotations


class MeshreleaseError(Exception):
    """Base class: a problem the user can fix, reported as one line."""

    exit_code = 2

    def __str__(self) -> str:  # one line, always
        return " ".join(super().__str__().split())


class ConfigError(MeshreleaseError):
    """meshrelease.toml or a command-line option is invalid."""


class UnknownVariantError(ConfigError):
    """The variant name is not configured."""


class InvalidTagError(ConfigError):
    """The release tag is not a valid git tag / Hub revision name."""


class SourceError(MeshreleaseError):
    """A checkpoint source cannot be fetched (missing file, HTTP error, bad URL)."""


class IntegrityError(MeshreleaseError):
    """Content does not match its expected sha256 (pin, manifest)."""

    exit_code = 3


class CheckpointError(MeshreleaseError):
    """The checkpoint file cannot be loaded safely or is not a MeshNet state dict."""


class UnsafeCheckpointError(CheckpointError):
    """The checkpoint would need to execute code to load (a pickle with globals)."""


class ArchitectureError(CheckpointError):
    """The weights do not fit the configured MeshNet variant."""


class SampleError(MeshreleaseError):
    """A NIfTI sample volume cannot be used for parity checks."""


class ExportError(MeshreleaseError):
    """An artifact could not be written or failed its structural check."""


class VerificationError(MeshreleaseError):
    """An artifact failed a parity or size check."""

    exit_code = 4


class OutputError(MeshreleaseError):
    """The release folder cannot be written."""


class PublishError(MeshreleaseError):
    """Publishing to the Hub failed; no tag was created."""

    exit_code = 5


class CardError(MeshreleaseError):
    """The model card cannot be rendered: missing template, bad results.json, incomplete release."""


class TfjsFormatError(ExportError):
    """A TF.js layers-model folder (model.json + weight shards) is malformed."""


class UnsupportedModelError(CheckpointError):
    """A model uses a construct MeshNet does not have, so it cannot be released as a MeshNet."""


class ReleaseNotFoundError(SourceError):
    """The Hub repo or release tag does not exist (or the token may not read it)."""


class TagMismatchError(ConfigError):
    """The release tag differs from the git tag whose push started the GitHub Actions run."""
