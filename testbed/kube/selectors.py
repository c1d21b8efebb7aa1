"""metav1.LabelSelector: read from a manifest with the API server's checks, and written back.

Matching a selector against labels is the oracle's (``testbed.oracle.selector_matches``).
"""

from __future__ import annotations

from typing import Any

from testbed.kube.errors import FieldReport
from testbed.model.policy import LabelSelector, Operator, Requirement
from testbed.labels import label_key_problem, label_value_problem

OPERATORS: tuple[Operator, ...] = ("In", "NotIn", "Exists", "DoesNotExist")
_WITH_VALUES = ("In", "NotIn")


def parse_label_selector(
    obj: object, path: str, report: FieldReport | None = None
) -> LabelSelector:
    """``obj`` (a manifest's selector) as a LabelSelector; ``path`` names it in errors.

    With ``report`` the problems are added to it; without, a ManifestError is raised.
    """
    own = report is None
    rep = report if report is not None else FieldReport("LabelSelector")
    fields = rep.mapping(obj, path, ("matchLabels", "matchExpressions")) or {}
    labels = rep.string_map(fields.get("matchLabels"), f"{path}.matchLabels")
    for key, value in labels.items():
        _check_key(rep, key, f"{path}.matchLabels")
        problem = label_value_problem(key, value)
        if problem:
            rep.invalid(f"{path}.matchLabels", value, problem)
    expressions = []
    raw = rep.sequence(fields.get("matchExpressions"), f"{path}.matchExpressions")
    for i, item in enumerate(raw):
        req = _parse_requirement(rep, item, f"{path}.matchExpressions[{i}]")
        if req is not None:
            expressions.append(req)
    if own:
        rep.raise_if_any()
    return LabelSelector(
        match_labels=tuple(sorted(labels.items())), match_expressions=tuple(expressions)
    )


def _check_key(rep: FieldReport, key: str, path: str) -> bool:
    problem = label_key_problem(key)
    if problem:
        rep.invalid(path, key, problem)
    return problem is None


def _parse_requirement(rep: FieldReport, item: object, path: str) -> Requirement | None:
    fields = rep.mapping(item, path, ("key", "operator", "values"))
    if fields is None:
        return None
    key = rep.string(fields.get("key"), f"{path}.key") or ""
    operator = rep.string(fields.get("operator"), f"{path}.operator") or ""
    values: list[str] = []
    for j, value in enumerate(rep.sequence(fields.get("values"), f"{path}.values")):
        text = rep.string(value, f"{path}.values[{j}]")
        if text is None:
            continue
        problem = label_value_problem(key, text)
        if problem:
            rep.invalid(f"{path}.values[{j}]", text, problem)
        values.append(text)
    ok = _check_key(rep, key, f"{path}.key")
    if operator in _WITH_VALUES and not values:
        rep.required(f"{path}.values", "must be specified when `operator` is 'In' or 'NotIn'")
        ok = False
    elif operator in ("Exists", "DoesNotExist") and values:
        rep.forbidden(
            f"{path}.values", "may not be specified when `operator` is 'Exists' or 'DoesNotExist'"
        )
        ok = False
    elif operator not in OPERATORS:
        rep.invalid(f"{path}.operator", operator, "not a valid selector operator")
        ok = False
    if not ok:
        return None
    op: Operator = operator  # type: ignore[assignment]  # checked against OPERATORS above
    return Requirement(key=key, operator=op, values=tuple(sorted(set(values))))


def label_selector_to_dict(selector: LabelSelector) -> dict[str, Any]:
    """The canonical manifest form: ``{}`` for the empty selector, empty parts left out."""
    out: dict[str, Any] = {}
    if selector.match_labels:
        out["matchLabels"] = dict(selector.match_labels)
    if selector.match_expressions:
        out["matchExpressions"] = [_requirement_to_dict(r) for r in selector.match_expressions]
    return out


def _requirement_to_dict(req: Requirement) -> dict[str, Any]:
    out: dict[str, Any] = {"key": req.key, "operator": req.operator}
    if req.values:
        out["values"] = list(req.values)
    return out
