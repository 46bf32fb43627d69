"""The monthly access review: who can do what in the platform, who is inactive, and removals after approval."""
