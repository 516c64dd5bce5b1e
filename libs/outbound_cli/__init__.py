"""``outbound``: the operator command line (campaigns from CSV, control, watch, dry-run)."""
