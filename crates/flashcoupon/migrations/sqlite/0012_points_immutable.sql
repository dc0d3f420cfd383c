-- The ledger's entries and takes are written once and never changed.
CREATE TRIGGER point_entries_no_update BEFORE UPDATE ON point_entries
BEGIN SELECT RAISE(ABORT, 'point entries are immutable'); END;
CREATE TRIGGER point_entries_no_delete BEFORE DELETE ON point_entries
BEGIN SELECT RAISE(ABORT, 'point entries are immutable'); END;
CREATE TRIGGER point_takes_no_update BEFORE UPDATE ON point_takes
BEGIN SELECT RAISE(ABORT, 'point takes are immutable'); END;
CREATE TRIGGER point_takes_no_delete BEFORE DELETE ON point_takes
BEGIN SELECT RAISE(ABORT, 'point takes are immutable'); END;
