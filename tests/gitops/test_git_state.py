"""Pure parsing and decisions over git's own output."""

from __future__ import annotations

from blumeops_tasks.gitops import git_state as gs

HEADERS = "# branch.oid {oid}\0# branch.head main\0# branch.upstream origin/main\0# branch.ab +{a} -{b}\0"
OID = "0123456789abcdef0123456789abcdef01234567"
H = "100644 100644 100644 " + "a" * 40 + " " + "b" * 40


def status_text(*records: str, a: int = 0, b: int = 0) -> str:
    return HEADERS.format(oid=OID, a=a, b=b) + "".join(r + "\0" for r in records)


def test_parse_status_every_record_kind() -> None:
    text = status_text(
        f"1 .M N... {H} roles/caddy/tasks/main.yml",
        f"1 A. N... {H} path with spaces/x.yml",
        f"2 R. N... {H} R100 inventory/new.yml",
        "inventory/old.yml",
        f"u UU N... 100644 100644 100644 100644 {'c' * 40} {'d' * 40} {'e' * 40} argocd/a.yaml",
        "? pulumi/new.py",
        "! ignored.log",
        a=2,
        b=1,
    )
    status = gs.parse_status(text)
    assert status.oid == OID
    assert status.branch == "main"
    assert status.upstream == "origin/main"
    assert (status.ahead, status.behind) == (2, 1)
    assert status.changed == (
        "roles/caddy/tasks/main.yml",
        "path with spaces/x.yml",
        "inventory/new.yml",
        "inventory/old.yml",
        "argocd/a.yaml",
        "pulumi/new.py",
    )


def test_parse_status_initial_and_detached() -> None:
    initial = gs.parse_status("# branch.oid (initial)\0# branch.head main\0")
    assert initial.oid is None
    assert initial.branch == "main"
    assert initial.upstream is None
    detached = gs.parse_status(f"# branch.oid {OID}\0# branch.head (detached)\0")
    assert detached.branch is None


def test_path_in_prefixes_and_files() -> None:
    paths = ("roles/", "ansible.cfg")
    assert gs.path_in("roles/caddy/tasks/main.yml", paths)
    assert gs.path_in("ansible.cfg", paths)
    assert gs.path_in("ansible.cfg/x", paths)
    assert not gs.path_in("ansible.cfg.bak", paths)
    assert not gs.path_in("rolesX/a", paths)
    assert not gs.path_in("docs/roles/a", paths)


def test_upstream_problems() -> None:
    def problem(**kw: object) -> str:
        base: dict[str, object] = {"oid": OID, "branch": "main", "upstream": "origin/main"}
        base.update(kw)
        return " | ".join(gs.upstream_problem(gs.GitStatus(**base)))  # type: ignore[arg-type]

    assert problem() == " | "
    assert problem(ahead=1) == "HEAD 0123456789ab is 1 commit ahead of origin/main | push first (`git push`)"
    assert problem(behind=3).startswith("HEAD 0123456789ab is 3 commits behind origin/main")
    assert "diverged from origin/main (2 ahead, 1 behind)" in problem(ahead=2, behind=1)
    assert problem(upstream=None).endswith("push it with `git push -u origin main`")
    assert "detached" in problem(branch=None, upstream=None)
    assert "no commit yet" in problem(oid=None)


def test_evaluate_counts_only_the_layers_files() -> None:
    status = gs.GitStatus(OID, "main", "origin/main", changed=("README.md", "pulumi/a.py"))
    assert gs.evaluate("hosts", ("roles/",), status).clean
    verdict = gs.evaluate("tailnet", ("pulumi/",), status)
    assert verdict.dirty_files == ("pulumi/a.py",)
    assert not verdict.clean


def test_refusal_sentences() -> None:
    status = gs.GitStatus(OID, "main", "origin/main", ahead=1, changed=("argocd/a.yaml",))
    verdict = gs.evaluate("argocd", ("argocd/",), status)
    assert gs.refusal(verdict, overridable=False) == (
        "Refusing to apply argocd: uncommitted changes in argocd/a.yaml; "
        "HEAD 0123456789ab is 1 commit ahead of origin/main; "
        "ArgoCD deploys only pushed commits, so commit and push them."
    )
    hosts = gs.evaluate("hosts", ("roles/",), gs.GitStatus(OID, "main", "origin/main", changed=("roles/a",)))
    assert gs.refusal(hosts, overridable=True) == (
        "Refusing to apply hosts: uncommitted changes in roles/a; commit and push them, "
        "or re-run with --allow-dirty to apply the working tree anyway (the override is journaled)."
    )


def test_dirty_fix_combines_with_the_upstream_fix() -> None:
    def fix(**kw: object) -> str:
        base: dict[str, object] = {"oid": OID, "branch": "main", "upstream": "origin/main", "changed": ("r/a",)}
        base.update(kw)
        return gs.evaluate("hosts", ("r/",), gs.GitStatus(**base)).fixes[0]  # type: ignore[arg-type]

    assert fix() == "commit and push them"
    assert fix(ahead=2) == "commit and push them"
    assert fix(upstream=None) == "commit them and push with `git push -u origin main`"
    assert fix(behind=1) == "commit them, then pull first (`git pull --ff-only`)"
    assert gs.evaluate("hosts", ("r/",), gs.GitStatus(OID, "main", "origin/main")).fixes == ()


def test_parse_log_and_names() -> None:
    text = f"{OID}\x1fAda\x1f2026-01-02T03:04:05+00:00\x1ffix: a\x1fb\x1e\n{'f' * 40}\x1fBo\x1fd\x1fs\x1e\n"
    commits = gs.parse_log(text)
    # a subject containing the separator would make 5 fields: git never emits \x1f in %s, skip it
    assert [c.sha for c in commits] == ["f" * 40]
    assert gs.parse_names("a\0b c\0") == ["a", "b c"]
