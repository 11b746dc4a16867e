"""Platforms (`os/architecture[/variant]`): parsed and normalized as containerd's `platforms`
package does, so `linux/aarch64`, `linux/arm64/v8` and `linux/arm64` are one platform, and
read from image configs and manifest list entries.

Architectures are GOARCH names (amd64, arm64, arm, 386, …), as image configs spell them.
"""

from __future__ import annotations

import platform as _host
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from isula_build.errors import InvalidArgument

# Spellings of an architecture (uname, Debian, GOARCH) → (GOARCH, default variant).
_ARCH_ALIASES: dict[str, tuple[str, str]] = {
    "x86_64": ("amd64", ""), "x86-64": ("amd64", ""), "amd64": ("amd64", ""),
    "aarch64": ("arm64", ""), "arm64": ("arm64", ""),
    "armhf": ("arm", "v7"), "armv7l": ("arm", "v7"), "armv7": ("arm", "v7"),
    "armel": ("arm", "v6"), "armv6l": ("arm", "v6"), "armv6": ("arm", "v6"),
    "arm": ("arm", "v7"),
    "i386": ("386", ""), "i686": ("386", ""), "386": ("386", ""),
    "ppc64le": ("ppc64le", ""), "s390x": ("s390x", ""), "riscv64": ("riscv64", ""),
    "loongarch64": ("loong64", ""), "loong64": ("loong64", ""),
    "mips64el": ("mips64le", ""), "mips64le": ("mips64le", ""),
}
# GOARCH → the name qemu-user and binfmt_misc give the architecture (qemu-<name>).
_QEMU_NAMES = {"amd64": "x86_64", "arm64": "aarch64", "arm": "arm", "386": "i386",
               "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64",
               "loong64": "loongarch64", "mips64le": "mips64el"}
_PART = re.compile(r"[a-z0-9_.-]+")


@dataclass(frozen=True)
class Platform:
    os: str
    architecture: str
    variant: str = ""

    def __str__(self) -> str:
        return f"{self.os}/{self.architecture}" + (f"/{self.variant}" if self.variant else "")

    @classmethod
    def parse(cls, text: str) -> Platform:
        """`os/arch[/variant]` (or `arch` alone, meaning linux), normalized; InvalidArgument
        with the reason otherwise. Only linux images can be built."""
        problem = platform_problem(text)
        if problem:
            raise InvalidArgument(f'invalid platform "{text}": {problem}')
        parts = _parts(text)
        return normalized(parts[0], parts[1], parts[2] if len(parts) == 3 else "")

    @property
    def qemu_name(self) -> str:
        """The architecture as qemu-user names it (binfmt_misc's `qemu-aarch64`)."""
        return _QEMU_NAMES.get(self.architecture, self.architecture)

    def automatic_args(self, prefix: str) -> dict[str, str]:
        """BuildKit's automatic ARGs for this platform: {prefix}PLATFORM, …OS, …ARCH, …VARIANT."""
        return {f"{prefix}PLATFORM": str(self), f"{prefix}OS": self.os,
                f"{prefix}ARCH": self.architecture, f"{prefix}VARIANT": self.variant}

    def config_fields(self) -> dict[str, str]:
        """The top-level fields of an image config that say its platform."""
        fields = {"os": self.os, "architecture": self.architecture}
        if self.variant:
            fields["variant"] = self.variant
        return fields


def _parts(text: str) -> list[str]:
    parts = text.strip().lower().split("/")
    return ["linux", *parts] if len(parts) == 1 else parts


def platform_problem(text: str) -> str | None:
    """Why `text` is no platform this project builds for; None when it is one."""
    parts = _parts(text)
    if len(parts) > 3 or not all(_PART.fullmatch(p) for p in parts):
        return "use os/arch[/variant]"
    if parts[0] != "linux":
        return "only linux images can be built"
    return None


def normalized(os_name: str, arch: str, variant: str = "") -> Platform:
    """containerd's normalization: aliases to GOARCH, arm64's v8 and amd64's v1 dropped, arm
    given v7 when no variant is said."""
    arch, default = _ARCH_ALIASES.get(arch.lower(), (arch.lower(), ""))
    variant = variant.lower() or default
    if (arch, variant) in (("arm64", "v8"), ("amd64", "v1")):
        variant = ""
    return Platform(os_name.lower() or "linux", arch, variant)


def host_platform(machine: str | None = None) -> Platform:
    """This machine's platform (`linux/amd64` here)."""
    return normalized("linux", machine or _host.machine())


def of_fields(value: Mapping[str, Any]) -> Platform | None:
    """The platform an image config or a manifest list entry's `platform` object says; None
    when it says no architecture."""
    arch = value.get("architecture")
    if not isinstance(arch, str) or not arch:
        return None
    os_name, variant = value.get("os"), value.get("variant")
    return normalized(os_name if isinstance(os_name, str) else "linux", arch,
                      variant if isinstance(variant, str) else "")


def matches(wanted: Platform, have: Platform | None) -> bool:
    """Whether an image of platform `have` serves `wanted`: same os and architecture, and the
    same variant when both say one (an image without a variant serves any)."""
    if have is None or (have.os, have.architecture) != (wanted.os, wanted.architecture):
        return False
    return not (wanted.variant and have.variant) or wanted.variant == have.variant


def parse_platforms(text: str) -> list[Platform]:
    """The comma-separated list of `--platform` (duplicates dropped, order kept); [] for ""."""
    platforms: list[Platform] = []
    for part in text.split(","):
        if part.strip():
            platform = Platform.parse(part)
            if platform not in platforms:
                platforms.append(platform)
    if text.strip() and not platforms:
        raise InvalidArgument(f'invalid platform "{text}": use os/arch[/variant][,…]')
    return platforms


__all__ = ["Platform", "host_platform", "matches", "normalized", "of_fields", "parse_platforms",
           "platform_problem"]
