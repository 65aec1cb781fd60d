"""Reports for people: security access reports, compliance reports, analytics exports."""
