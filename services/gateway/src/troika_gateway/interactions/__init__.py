"""What waits for the person: approvals, input forms and requests for guidance."""
