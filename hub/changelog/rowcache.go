package changelog

// rowCache holds the encoded images (raw JSON row objects) of recently written rows,
// so that an update with unchanged columns is usually filled without reading stored
// chunks. It keeps rows only of tables that have had an update with unchanged
// columns: most tables never do, and caching every row costs about a tenth of
// ingest. It evicts in insertion order (a ring), bounded by entries and bytes. It is
// used only by the goroutine holding the writer.
type rowCache struct {
	tables   map[string]bool // tables whose rows are kept
	maxBytes int
	index    map[rowKey]int
	slots    []rowSlot
	hand     int
	bytes    int
}

type rowKey struct {
	table string
	key   string
}

type rowSlot struct {
	k    rowKey
	row  []byte
	used bool
}

func newRowCache(entries, maxBytes int) *rowCache {
	if entries <= 0 || maxBytes <= 0 {
		return &rowCache{}
	}
	return &rowCache{
		tables:   map[string]bool{},
		maxBytes: maxBytes,
		index:    make(map[rowKey]int, entries),
		slots:    make([]rowSlot, entries),
	}
}

func (c *rowCache) enabled() bool { return len(c.slots) > 0 }

// enable starts keeping the rows of table.
func (c *rowCache) enable(table string) {
	if c.enabled() && !c.tables[table] {
		c.tables[table] = true
	}
}

// caches reports whether rows of table are kept.
func (c *rowCache) caches(table string) bool { return c.tables[table] }

func (c *rowCache) get(table, key string) ([]byte, bool) {
	if !c.enabled() {
		return nil, false
	}
	i, ok := c.index[rowKey{table, key}]
	if !ok {
		return nil, false
	}
	return c.slots[i].row, true
}

func (c *rowCache) put(table, key string, row []byte) {
	if !c.enabled() {
		return
	}
	k := rowKey{table, key}
	if len(row) > c.maxBytes/8 {
		c.remove(table, key)
		return
	}
	if i, ok := c.index[k]; ok {
		s := &c.slots[i]
		c.bytes += len(row) - len(s.row)
		s.row = reuse(s.row, row)
		c.trim(i)
		return
	}
	i := c.hand
	c.hand = (c.hand + 1) % len(c.slots)
	s := &c.slots[i]
	if s.used {
		delete(c.index, s.k)
		c.bytes -= len(s.row)
	}
	s.k, s.used = k, true
	s.row = reuse(s.row, row)
	c.bytes += len(row)
	c.index[k] = i
	c.trim(i)
}

// trim evicts the oldest entries, other than keep, until the cache fits its budget.
func (c *rowCache) trim(keep int) {
	for j := c.hand; c.bytes > c.maxBytes; j = (j + 1) % len(c.slots) {
		if j == keep {
			break
		}
		s := &c.slots[j]
		if s.used {
			delete(c.index, s.k)
			c.bytes -= len(s.row)
			s.used, s.row, s.k = false, nil, rowKey{}
		}
	}
}

func (c *rowCache) remove(table, key string) {
	if !c.enabled() {
		return
	}
	k := rowKey{table, key}
	if i, ok := c.index[k]; ok {
		s := &c.slots[i]
		delete(c.index, k)
		c.bytes -= len(s.row)
		s.used, s.row, s.k = false, nil, rowKey{}
	}
}

// reuse copies row into buf's storage unless buf is much larger than needed, so that
// slots do not pin memory beyond the byte budget.
func reuse(buf, row []byte) []byte {
	if cap(buf) > 2*len(row)+1024 {
		buf = nil
	}
	return append(buf[:0], row...)
}

func (c *rowCache) clear() {
	if !c.enabled() {
		return
	}
	clear(c.index)
	for i := range c.slots {
		c.slots[i] = rowSlot{}
	}
	c.hand, c.bytes = 0, 0
}

// chunkRows keeps the row images of the last few stored chunks read to fill unchanged
// columns, indexed by key, so that rows stored together (a snapshot, a bulk insert)
// cost one chunk read and scan for all of them rather than one each. Stored chunks
// change only through compaction and rollback, which clear it. It is used only by the
// goroutine holding the writer.
type chunkRows struct {
	slots [4]chunkRowsSlot
	next  int
}

type chunkRowsSlot struct {
	id    int64
	table string
	rows  map[string][]byte // key text → raw row object (the last image in the chunk)
}

func (c *chunkRows) get(id int64, table string) (map[string][]byte, bool) {
	for i := range c.slots {
		if s := &c.slots[i]; s.rows != nil && s.id == id && s.table == table {
			return s.rows, true
		}
	}
	return nil, false
}

func (c *chunkRows) put(id int64, table string, rows map[string][]byte) {
	c.slots[c.next] = chunkRowsSlot{id: id, table: table, rows: rows}
	c.next = (c.next + 1) % len(c.slots)
}

func (c *chunkRows) clear() { *c = chunkRows{} }
