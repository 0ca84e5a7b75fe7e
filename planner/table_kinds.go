package planner

// The table kinds (create_table, rename_table, drop_table) change which
// tables exist, which the engine and the sequence model otherwise take as
// given. These small interfaces say how.

// tableCreator: the change creates its table, which must not exist before
// it; it registers without a catalog snapshot.
type tableCreator interface{ createsTable() }

// tableRenamer: the change renames its table; later changes use the new
// name, and queue behind it as changes on one table do.
type tableRenamer interface{ renamesTable() TableName }

// tableDropper: the change drops its table; no later change may use it.
type tableDropper interface{ dropsTable() }

func createsTable(k Kind) bool { _, ok := k.(tableCreator); return ok }

// tableKeys are the tables a change touches (as TableName.Key()): its
// table and, for a rename, the new name.
func tableKeys(k Kind) []TableName {
	if k == nil {
		return nil
	}
	keys := []TableName{k.Table().Key()}
	if r, ok := k.(tableRenamer); ok {
		keys = append(keys, r.renamesTable().Key())
	}
	return keys
}

// tableGroups maps each table name to one group name, so that names
// linked by a rename form one group (union-find over the names).
type tableGroups map[TableName]TableName

func (g tableGroups) find(k TableName) TableName {
	for {
		p, ok := g[k]
		if !ok || p == k {
			return k
		}
		k = p
	}
}

func (g tableGroups) link(keys []TableName) {
	if len(keys) == 0 {
		return
	}
	root := g.find(keys[0])
	g[root] = root
	for _, k := range keys[1:] {
		if r := g.find(k); r != root {
			g[r] = root
		}
	}
}
