"""The job model: what a job is (spec), what reaches the roles (contract), its record (store), staging."""
