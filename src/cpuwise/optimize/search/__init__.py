"""The search: run the passes (loop), measure each candidate (judge), pick among them (choose)."""
