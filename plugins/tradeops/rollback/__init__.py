"""The emergency rollback (``dags/emergency_rollback.py``): its trigger form (:mod:`.forms`), the pure plan of what
it changes (:mod:`.plans`) and its steps (:mod:`.operators`)."""
