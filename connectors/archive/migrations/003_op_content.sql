-- Everything an auditor needs to rebuild an operation's signed content from the archive alone
-- (and so re-verify its signature): the producing region and the operation's metadata.
ALTER TABLE jarvis.ops ADD COLUMN IF NOT EXISTS op_region text NOT NULL DEFAULT '';
ALTER TABLE jarvis.ops ADD COLUMN IF NOT EXISTS metadata jsonb NOT NULL DEFAULT '{}';
CREATE INDEX IF NOT EXISTS snapshots_object_hlc ON jarvis.snapshots (object_id, hlc);
