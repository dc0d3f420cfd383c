-- The ledger's entries and takes are written once and never changed.
CREATE FUNCTION points_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'point % are immutable', TG_TABLE_NAME USING ERRCODE = '23514';
END;
$$;
CREATE TRIGGER point_entries_immutable BEFORE UPDATE OR DELETE ON point_entries
    FOR EACH ROW EXECUTE FUNCTION points_immutable();
CREATE TRIGGER point_takes_immutable BEFORE UPDATE OR DELETE ON point_takes
    FOR EACH ROW EXECUTE FUNCTION points_immutable();
