-- The purposes of use of each indexed entry (auditlog.JoinPurposes: ' BTG '),
-- for the AuditEvent search's purpose parameter. The index is derived:
-- emptied here, it is rebuilt from the entries by the next search.
ALTER TABLE audit_index ADD COLUMN purpose TEXT NOT NULL DEFAULT '';
DELETE FROM audit_index;
