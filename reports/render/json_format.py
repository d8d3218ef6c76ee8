from reports.model import Report


def render(report: Report, **_) -> str:
    return report.to_json()
