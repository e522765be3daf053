"""Rules between the parts of a config, checked once the models accepted every shape.

Names of registries and groups, credentials against ``auth_type``, ``latest`` without
``sort``, a mapping copying onto itself, two mappings writing one target repository. Each
check returns its problems; :data:`CHECKS` (and :data:`MAPPING_CHECKS`, run mapping by
mapping) say in which order they are reported for the same line.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ocync.config.models import Config, MappingConfig, RegistryConfig, TagsConfig
from ocync.config.problems import Loc, Problem, suggest
from ocync.config.resolve import ArtifactPolicy, effective_auth_type
from ocync.oci.digestpin import is_digest, tag_problem
from ocync.oci.repopattern import is_pattern
from ocync.oci.tagfilter import TagFilter, selections_may_overlap
from ocync.profilenames import NO_CATALOG_PROFILES, profile_name_for


@dataclass(frozen=True, slots=True)
class _Names:
    """The config with its registry and group names, computed once for every check."""

    cfg: Config
    registries: frozenset[str]
    groups: frozenset[str]

    @classmethod
    def of(cls, cfg: Config) -> _Names:
        return cls(cfg, frozenset(cfg.registries), frozenset(cfg.target_groups))

    @property
    def all(self) -> list[str]:
        return sorted(self.registries | self.groups)


# ---------------------------------------------------------------------------------------
# What a source, a target list, a tag filter or an artifact policy may not be (wherever set)


def _source_problems(names: _Names, loc: Loc, name: str) -> list[Problem]:
    if name in names.groups and name not in names.registries:
        return [Problem(loc, f"`{name}` is a target group; a source is one registry")]
    if name not in names.registries:
        return [Problem(loc, f"unknown registry `{name}`{suggest(name, names.registries)}")]
    return []


def _targets_problems(names: _Names, loc: Loc, targets: list[str]) -> list[Problem]:
    problems = [] if targets else [Problem(loc, "empty list of targets")]
    for i, name in enumerate(targets):
        if name not in names.registries and name not in names.groups:
            where = loc + (i,) if len(targets) > 1 else loc
            problems.append(
                Problem(where, f"unknown registry or group `{name}`{suggest(name, names.all)}")
            )
    return problems


def _tags_problems(loc: Loc, tags: TagsConfig | None, merged: TagFilter | None) -> list[Problem]:
    """``merged``: the mapping's effective filter; None for ``defaults.tags`` alone."""
    source = merged if merged is not None else tags
    sort = source.sort if source else None
    latest = source.latest if source else None
    min_tags = source.min_tags if source else None
    problems = []
    if latest is not None and sort is None:
        problems.append(Problem(loc + ("latest",), "`latest` needs `sort` (semver or alpha)"))
    # Literal includes are kept on top of the `latest` newest.
    extra = len(merged.literal_includes) if merged else 0
    if latest is not None and min_tags is not None and min_tags > latest + extra:
        problems.append(
            Problem(loc + ("min_tags",), f"min_tags {min_tags} can never be met with latest {latest}")
        )
    return problems


def _artifacts_problems(loc: Loc, policy: ArtifactPolicy) -> list[Problem]:
    if policy.require_artifacts and not policy.enabled:
        return [Problem(loc + ("require_artifacts",), "require_artifacts with artifacts disabled")]
    return []


# ---------------------------------------------------------------------------------------
# Checks of the whole config


def check_group_names(names: _Names) -> list[Problem]:
    return [
        Problem(("target_groups", name), f"`{name}` is both a registry and a group name")
        for name in sorted(names.registries & names.groups)
    ]


def check_group_members(names: _Names) -> list[Problem]:
    problems = []
    for gname, members in names.cfg.target_groups.items():
        if not members:
            problems.append(Problem(("target_groups", gname), "empty group"))
        for i, member in enumerate(members):
            if member not in names.registries:
                problems.append(
                    Problem(
                        ("target_groups", gname, i),
                        f"unknown registry `{member}`{suggest(member, names.registries)}",
                    )
                )
    return problems


def _credential_problems(loc: Loc, reg: RegistryConfig) -> list[Problem]:
    """``token``/``credentials`` against the (explicit or implied) ``auth_type``."""
    auth = effective_auth_type(reg)
    problems = []
    if reg.token is not None and reg.credentials is not None:
        problems.append(Problem(loc + ("token",), "set either `token` or `credentials`"))
    if auth == "basic" and reg.credentials is None:
        problems.append(Problem(loc + ("auth_type",), "auth_type basic needs `credentials`"))
    if auth == "static_token" and reg.token is None:
        problems.append(Problem(loc + ("auth_type",), "auth_type static_token needs `token`"))
    if auth in ("anonymous", "docker_config") and reg.auth_type is not None:
        if reg.token is not None:
            problems.append(
                Problem(loc + ("token",), f"`token` is ignored with auth_type {reg.auth_type}")
            )
        if reg.credentials is not None:
            problems.append(
                Problem(
                    loc + ("credentials",), f"`credentials` are ignored with auth_type {reg.auth_type}"
                )
            )
    return problems


def check_credentials(names: _Names) -> list[Problem]:
    return [
        problem
        for rname, reg in names.cfg.registries.items()
        for problem in _credential_problems(("registries", rname), reg)
    ]


def check_defaults(names: _Names) -> list[Problem]:
    d = names.cfg.defaults
    problems = []
    if d.source is not None:
        problems += _source_problems(names, ("defaults", "source"), d.source)
    if d.targets is not None:
        problems += _targets_problems(names, ("defaults", "targets"), d.targets)
    if d.tags is not None and not names.cfg.mappings:
        # With mappings, the merged filter of each is checked instead (check_mapping_tags).
        problems += _tags_problems(("defaults", "tags"), d.tags, None)
    return problems


def check_mappings(names: _Names) -> list[Problem]:
    """Every MAPPING_CHECKS check, mapping by mapping (so one mapping's problems stay together)."""
    return [
        problem
        for i, m in enumerate(names.cfg.mappings)
        for check in MAPPING_CHECKS
        for problem in check(names, i, m)
    ]


def check_shared_targets(names: _Names) -> list[Problem]:
    """Two mappings writing one target repository would re-tag it from each source in turn
    on every run, unless their tag selections provably cannot meet (selections_may_overlap).
    Same target = same registry host and repository once defaults and groups are resolved."""
    cfg = names.cfg
    problems: list[Problem] = []
    writers: dict[tuple[str, str], list[tuple[int, str, TagFilter]]] = {}
    for i, m in enumerate(cfg.mappings):
        source = m.source or cfg.defaults.source
        target_names = m.targets if m.targets is not None else cfg.defaults.targets
        if source not in cfg.registries or not target_names:
            continue  # already reported
        tags = cfg.effective_tags(m)
        for name in cfg.expand_targets(target_names):
            if name not in cfg.registries:
                continue  # already reported
            target = cfg.registry(name)
            repo = target.repository(m.to or m.from_)
            earlier = writers.setdefault((target.host, repo), [])
            for j, what, other in earlier:
                if j != i and selections_may_overlap(other, tags):
                    loc: Loc = ("mappings", i) + (("to",) if "to" in m.model_fields_set else ())
                    problems.append(
                        Problem(
                            loc,
                            f"writes `{repo}` at registry `{name}` like mappings[{j}] ({what}), and their "
                            "tags can overlap (each run would re-tag them from the other): "
                            "merge the two, or give both disjoint literal tags "
                            "(`include` with `glob: []`)",
                        )
                    )
                    break
            earlier.append((i, f"`{m.from_}` from `{source}`", tags))
    return problems


# ---------------------------------------------------------------------------------------
# Checks of one mapping (defaults applied)


def check_mapping_source(names: _Names, i: int, m: MappingConfig) -> list[Problem]:
    if m.source is not None:
        return _source_problems(names, ("mappings", i, "source"), m.source)
    if names.cfg.defaults.source is None:
        return [Problem(("mappings", i), "no source: set `source` here or `defaults.source`")]
    return []


def check_mapping_targets(names: _Names, i: int, m: MappingConfig) -> list[Problem]:
    if m.targets is not None:
        return _targets_problems(names, ("mappings", i, "targets"), m.targets)
    if names.cfg.defaults.targets is None:
        return [Problem(("mappings", i), "no targets: set `targets` here or `defaults.targets`")]
    return []


def check_mapping_tags(names: _Names, i: int, m: MappingConfig) -> list[Problem]:
    """The merged filter, reported where the fields involved were set."""
    own = m.tags
    set_here = own is not None and (
        own.latest is not None or own.sort is not None or own.min_tags is not None
    )
    loc: Loc = ("mappings", i, "tags") if set_here else ("defaults", "tags")
    return _tags_problems(loc, own, names.cfg.effective_tags(m))


def check_mapping_artifacts(names: _Names, i: int, m: MappingConfig) -> list[Problem]:
    loc: Loc = ("mappings", i, "artifacts") if m.artifacts is not None else ("defaults", "artifacts")
    return _artifacts_problems(loc, names.cfg.effective_artifacts(m))


def check_self_copy(names: _Names, i: int, m: MappingConfig) -> list[Problem]:
    """Copying a repository onto itself would be a no-op at best."""
    cfg = names.cfg
    source = m.source or cfg.defaults.source
    target_names = m.targets if m.targets is not None else cfg.defaults.targets
    if source not in cfg.registries or not target_names or (m.to or m.from_) != m.from_:
        return []
    host = cfg.registry(source).host
    return [
        Problem(("mappings", i, "to"), f"copies `{m.from_}` onto itself at registry `{t}`")
        for t in cfg.expand_targets(target_names)
        if t in cfg.registries and cfg.registry(t).host == host
    ]


def check_mapping_pattern(names: _Names, i: int, m: MappingConfig) -> list[Problem]:
    """A pattern ``from`` lists the source's catalog; its ``to`` keeps the matched suffix."""
    loc: Loc = ("mappings", i)
    to = m.to or m.from_
    if not is_pattern(m.from_):
        problems = []
        if is_pattern(to):
            problems.append(Problem(loc + ("to",), f"`to: {to}` is a pattern but `from: {m.from_}` is "
                                    "one repository"))
        if m.exclude is not None:
            problems.append(Problem(loc + ("exclude",), "`exclude` needs a pattern `from` "
                                    "(team/* or team/**)"))
        return problems
    problems = []
    if not is_pattern(to):
        problems.append(Problem(loc + ("to",), f"`from: {m.from_}` is a pattern: `to` must end with "
                                "/* where the matched suffix goes (e.g. mirror/*), else every "
                                f"repository would land on `{to}`"))
    if m.digests is not None or m.tag_template is not None:
        field = "digests" if m.digests is not None else "tag_template"
        problems.append(Problem(loc + (field,), "digest pins name one repository's images: "
                                "not with a pattern `from`"))
    cfg = names.cfg
    source = m.source or cfg.defaults.source
    if source in cfg.registries:
        reg = cfg.registry(source)
        profile = profile_name_for(reg.host, reg.profile)
        if profile in NO_CATALOG_PROFILES:
            problems.append(Problem(loc + ("from",), f"`from: {m.from_}` is a pattern, but registry "
                                    f"`{source}` ({profile} profile) has no catalog API to list "
                                    "repositories: list the repositories as separate mappings"))
    return problems


def check_mapping_digests(names: _Names, i: int, m: MappingConfig) -> list[Problem]:
    """Digest pins: a platform filter would push a trimmed index, i.e. another digest than
    the one pinned, so the mapping's own ``platforms`` and pins are refused together (pins
    are copied exactly as pinned, ``defaults.platforms`` does not apply to them); a template
    needs something to tag."""
    cfg = names.cfg
    pins = [*(m.digests or ()), *(d for d in cfg.effective_tags(m).include if is_digest(d))]
    loc: Loc = ("mappings", i)
    problems = []
    if m.tag_template is not None and not pins:
        problems.append(Problem(loc + ("tag_template",), "`tag_template` tags pinned digests: "
                                "set `digests` (or digests in `tags.include`)"))
    if m.tag_template is not None:
        problems += [Problem(loc + ("tag_template",), p)
                     for p in dict.fromkeys(tag_problem(m.tag_template, d) for d in pins) if p]
    if pins and m.platforms is not None:
        problems.append(Problem(loc + ("platforms",), "digest pins copy an image exactly as pinned; "
                                "`platforms` would trim an index to another digest: pin the "
                                "platform manifests' digests instead"))
    return problems


MappingCheck = Callable[[_Names, int, MappingConfig], list[Problem]]
MAPPING_CHECKS: tuple[MappingCheck, ...] = (
    check_mapping_source,
    check_mapping_targets,
    check_mapping_tags,
    check_mapping_artifacts,
    check_self_copy,
    check_mapping_pattern,
    check_mapping_digests,
)
CHECKS: tuple[Callable[[_Names], list[Problem]], ...] = (
    check_group_names,
    check_group_members,
    check_credentials,
    check_defaults,
    check_mappings,
    check_shared_targets,
)


def cross_check(cfg: Config) -> list[Problem]:
    """Every problem of CHECKS, in that order, each once."""
    names = _Names.of(cfg)
    problems = [problem for check in CHECKS for problem in check(names)]
    return list(dict.fromkeys(problems))


__all__ = ["CHECKS", "MAPPING_CHECKS", "cross_check"]
