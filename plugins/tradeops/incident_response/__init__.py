"""The incident response runbooks (``incident_response``): the form, the dry-run plan and the steps."""
