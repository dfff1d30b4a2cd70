"""Compute-instance profiles: expand the values into KubeSpawner ``profile_list`` entries.

Pure functions. Compute instances are defined once and referenced by key from each profile's
``allowed_compute_instances``. For one user (a :class:`Principal`: Hub role names and group
names) :func:`profile_list` returns only the profiles and instances that user may use, with
generated display names ("Shared A100 (Limits: 100GB RAM, 8 CPU, 8GB VRAM)"); :func:`select`
re-checks a spawn request (form or REST API) against the same rules and refuses what is not
allowed, so hiding an entry in the form is never the only protection.

User options, as KubeSpawner names them: ``profile`` (slug), ``compute`` (instance key) and
``image`` (image key).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hubintegration.errors import ProfileRefused
from hubintegration.settings import ComputeInstance, HubSettings, Profile

COMPUTE_OPTION = "compute"
IMAGE_OPTION = "image"
GPU_LIMIT_ANNOTATION = "gpu-mem-limit.{resource}"


@dataclass(frozen=True, slots=True)
class Principal:
    """What the Hub knows about a user for access decisions: role names and group names."""

    name: str
    roles: frozenset[str] = frozenset()
    groups: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Selection:
    """A checked spawn request: the profile, the compute instance and the image."""

    profile: Profile
    instance_key: str
    instance: ComputeInstance
    image_key: str | None

    @property
    def image(self) -> str | None:
        return self.profile.images[self.image_key].image if self.image_key else None


def _number(value: float) -> str:
    return f"{value:g}"


def _bytes_label(quantity: str) -> str:
    return f"{quantity}B" if quantity[-1].isalpha() else f"{quantity} bytes"


def _vram_label(megabytes: int) -> str:
    if megabytes >= 1000:
        return f"{_number(round(megabytes / 1000, 1))}GB"
    return f"{megabytes}MB"


def _walltime_label(minutes: float) -> str:
    if minutes % 60 == 0:
        hours = int(minutes // 60)
        return f"{hours} hour" if hours == 1 else f"{hours} hours"
    return f"{_number(minutes)} min"


def instance_display_name(instance: ComputeInstance, gpu_unit_mb: dict[str, int]) -> str:
    """``<name> (Limits: <RAM>, <CPU>, <VRAM>, <walltime>)``, leaving out what is unset."""
    limits: list[str] = []
    if instance.mem_limit:
        limits.append(f"{_bytes_label(instance.mem_limit)} RAM")
    if instance.cpu_limit is not None:
        limits.append(f"{_number(instance.cpu_limit)} CPU")
    resource = instance.gpu_resource_name
    if resource and instance.gpu_limit:
        unit = gpu_unit_mb.get(resource)
        if unit:
            limits.append(f"{_vram_label(instance.gpu_limit * unit)} VRAM")
        else:
            limits.append(f"{instance.gpu_limit} x {resource}")
    if instance.walltime_minutes:
        limits.append(_walltime_label(instance.walltime_minutes))
    if not limits:
        return instance.display_name
    return f"{instance.display_name} (Limits: {', '.join(limits)})"


def instance_override(instance: ComputeInstance, settings: HubSettings) -> dict[str, Any]:
    """The ``kubespawner_override`` of an instance: plain values, no callables.

    Kubernetes forces requests = limits for extended resources, so the GPU guarantee is both,
    and a higher GPU limit travels as the ``gpu-mem-limit.<resource>`` annotation.
    """
    override: dict[str, Any] = {}
    for trait in ("cpu_guarantee", "cpu_limit", "mem_guarantee", "mem_limit"):
        value = getattr(instance, trait)
        if value is not None:
            override[trait] = value
    resource = instance.gpu_resource_name
    if resource and (instance.gpu_guarantee or instance.gpu_limit):
        amount = str(instance.gpu_guarantee or instance.gpu_limit)
        override["extra_resource_guarantees"] = {resource: amount}
        override["extra_resource_limits"] = {resource: amount}
        if instance.gpu_limit > instance.gpu_guarantee:
            key = GPU_LIMIT_ANNOTATION.format(resource=resource)
            override["extra_annotations"] = {key: str(instance.gpu_limit)}
    if instance.node_type:
        override["node_selector"] = {settings.kubepie.node_type_label: instance.node_type}
    return override


def _allowed_instances(
    settings: HubSettings, profile: Profile, who: Principal
) -> list[tuple[str, ComputeInstance]]:
    out = []
    for key in profile.allowed_compute_instances:
        instance = settings.compute_instances[key]
        if instance.permits(who.roles, who.groups):
            out.append((key, instance))
    return out


def _allowed_profiles(settings: HubSettings, who: Principal) -> list[Profile]:
    return [
        profile
        for profile in settings.profiles
        if profile.permits(who.roles, who.groups) and _allowed_instances(settings, profile, who)
    ]


def profile_list(settings: HubSettings, who: Principal) -> list[dict[str, Any]]:
    """KubeSpawner ``profile_list`` entries that ``who`` may use, in values order."""
    units = settings.kubepie.gpu_unit_mb
    entries: list[dict[str, Any]] = []
    for profile in _allowed_profiles(settings, who):
        compute = {
            key: {
                "display_name": instance_display_name(instance, units),
                "kubespawner_override": instance_override(instance, settings),
            }
            for key, instance in _allowed_instances(settings, profile, who)
        }
        options: dict[str, Any] = {
            COMPUTE_OPTION: {"display_name": "Compute Profile", "choices": compute}
        }
        if profile.images:
            options[IMAGE_OPTION] = {
                "display_name": "Image",
                "choices": {
                    key: {
                        "display_name": choice.display_name,
                        "default": choice.default,
                        "kubespawner_override": {"image": choice.image},
                    }
                    for key, choice in profile.images.items()
                },
            }
        entries.append(
            {
                "display_name": profile.display_name,
                "slug": profile.slug,
                "description": profile.description,
                "default": profile.default,
                "profile_options": options,
            }
        )
    if entries and not any(entry["default"] for entry in entries):
        entries[0]["default"] = True
    return entries


def _option(user_options: dict[str, Any], name: str) -> str | None:
    value = user_options.get(name)
    if value is None or value == "":
        return None
    if isinstance(value, list) and len(value) == 1:  # form fields arrive as lists
        value = value[0]
    if not isinstance(value, str):
        raise ProfileRefused(f"option {name!r} must be a string")
    return value


def select(settings: HubSettings, who: Principal, user_options: dict[str, Any]) -> Selection:
    """Check a spawn request against the rules; the default choices where options are absent.

    Raises :class:`ProfileRefused` with a message for the user when the profile, instance or
    image is unknown or not allowed, or when an unlisted (free-form) choice is sent.
    """
    for name in user_options:
        if name.endswith("--unlisted-choice"):
            raise ProfileRefused(f"free-form option {name!r} is not accepted")
    allowed = _allowed_profiles(settings, who)
    if not allowed:
        raise ProfileRefused(f"{who.name} may not use any server profile")
    slug = _option(user_options, "profile")
    if slug is None:
        profile = next((p for p in allowed if p.default), allowed[0])
    else:
        found = next((p for p in allowed if p.slug == slug), None)
        if found is None:
            raise ProfileRefused(f"profile {slug!r} is not available to {who.name}")
        profile = found
    instances = dict(_allowed_instances(settings, profile, who))
    key = _option(user_options, COMPUTE_OPTION)
    if key is None:
        key = next(iter(instances))
    elif key not in instances:
        raise ProfileRefused(
            f"compute instance {key!r} is not available to {who.name} in profile {profile.slug!r}"
        )
    image = _option(user_options, IMAGE_OPTION)
    if image is None and profile.images:
        image = next(
            (k for k, c in profile.images.items() if c.default), next(iter(profile.images))
        )
    elif image is not None and image not in profile.images:
        raise ProfileRefused(f"image {image!r} is not offered by profile {profile.slug!r}")
    return Selection(profile, key, instances[key], image)
