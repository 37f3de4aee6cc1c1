-- Background jobs that must not run on two replicas at once (sqlite). Keep in step with the other
-- backend's 0011. A replica runs a job only while it holds the job's lease; a replica that dies
-- loses it when until_ms passes, and another takes over.
CREATE TABLE job_leases (
    job      TEXT PRIMARY KEY,
    holder   TEXT NOT NULL,
    until_ms BIGINT NOT NULL
);
