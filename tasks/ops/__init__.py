"""Operations: the failure alert of the ``notify_failure`` flow and the automation that runs it."""
