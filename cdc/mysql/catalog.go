package mysql

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/go-mysql-org/go-mysql/client"
	gomysql "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"
	"github.com/synchub/synchub/cdc"
)

// binaryCollation is the collation id of the binary character set.
const binaryCollation = 63

// colInfo is what decoding needs to know about a column beyond its cdc.Column.
type colInfo struct {
	dataType string   // information_schema DATA_TYPE (lower case), or the binlog type's name
	unsigned bool     // integer column declared UNSIGNED
	isFloat  bool     // FLOAT (single precision): values are rounded to float32's shortest text
	fixedLen int      // BINARY(n): n, so stripped trailing zero bytes can be restored
	labels   []string // ENUM and SET labels, in declaration order
	mapType  byte     // binlog column type last seen in a table map; 0 before
}

// tableDef is a captured table: its source-neutral definition plus decoding details.
type tableDef struct {
	db, name string
	table    cdc.Table
	cols     []colInfo
}

// quoteIdent quotes a MySQL identifier with backquotes.
func quoteIdent(s string) string {
	return "`" + strings.ReplaceAll(s, "`", "``") + "`"
}

// qualified is the quoted `db`.`table` name.
func (d *tableDef) qualified() string { return quoteIdent(d.db) + "." + quoteIdent(d.name) }

// loadTable reads a table's definition from information_schema.
func loadTable(conn *client.Conn, name string, mariaDB bool) (*tableDef, error) {
	db, tbl := cdc.SplitTableName(name)
	r, err := conn.Execute(`SELECT COLUMN_NAME, LOWER(DATA_TYPE), COLUMN_TYPE, IS_NULLABLE, COALESCE(CHARACTER_SET_NAME, ''),
			COALESCE(CHARACTER_OCTET_LENGTH, 0)
		FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION`, db, tbl)
	if err != nil {
		return nil, classify("read table "+name, err)
	}
	if r.RowNumber() == 0 {
		return nil, configError("read table "+name, fmt.Errorf("table %s does not exist (or the user cannot see it)", name),
			"create it, correct its name in the configured tables (database.table, case as in the database), or GRANT SELECT ON it")
	}
	def := &tableDef{db: db, name: tbl, table: cdc.Table{Name: name}}
	jsonCols := map[string]bool{}
	if mariaDB {
		if jsonCols, err = mariaDBJSONColumns(conn, db, tbl); err != nil {
			return nil, err
		}
	}
	for i := range r.RowNumber() {
		colName, _ := r.GetString(i, 0)
		dataType, _ := r.GetString(i, 1)
		colType, _ := r.GetString(i, 2)
		nullable, _ := r.GetString(i, 3)
		charset, _ := r.GetString(i, 4)
		octets, _ := r.GetInt(i, 5)
		col, info, err := columnFromCatalog(name, colName, dataType, colType, charset, int(octets), jsonCols[colName])
		if err != nil {
			return nil, err
		}
		col.Nullable = nullable == "YES"
		def.table.Columns = append(def.table.Columns, col)
		def.cols = append(def.cols, info)
	}
	pk, err := conn.Execute(`SELECT COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE
		WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND CONSTRAINT_NAME = 'PRIMARY' ORDER BY ORDINAL_POSITION`, db, tbl)
	if err != nil {
		return nil, classify("read primary key of "+name, err)
	}
	for i := range pk.RowNumber() {
		c, _ := pk.GetString(i, 0)
		def.table.PrimaryKey = append(def.table.PrimaryKey, c)
	}
	if len(def.table.PrimaryKey) == 0 {
		return nil, configError("read table "+name, fmt.Errorf("table %s has no primary key, so its rows cannot be identified", name),
			fmt.Sprintf("ALTER TABLE %s ADD PRIMARY KEY (...)", def.qualified()))
	}
	if err := def.table.Validate(); err != nil {
		return nil, configError("read table "+name, err, "give the table a primary key made of its columns")
	}
	return def, nil
}

// mariaDBJSONColumns finds MariaDB's JSON columns: LONGTEXT with a json_valid() check
// named after the column.
func mariaDBJSONColumns(conn *client.Conn, db, tbl string) (map[string]bool, error) {
	r, err := conn.Execute(`SELECT CONSTRAINT_NAME, CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS
		WHERE CONSTRAINT_SCHEMA = ? AND TABLE_NAME = ?`, db, tbl)
	if err != nil {
		return nil, classify("read JSON columns of "+db+"."+tbl, err)
	}
	out := map[string]bool{}
	for i := range r.RowNumber() {
		name, _ := r.GetString(i, 0)
		clause, _ := r.GetString(i, 1)
		if strings.EqualFold(strings.TrimSpace(clause), "json_valid("+quoteIdent(name)+")") {
			out[name] = true
		}
	}
	return out, nil
}

// columnFromCatalog maps an information_schema column to a cdc.Column.
func columnFromCatalog(table, name, dataType, colType, charset string, octets int, isJSON bool) (cdc.Column, colInfo, error) {
	info := colInfo{dataType: dataType, unsigned: strings.Contains(colType, "unsigned")}
	col := cdc.Column{Name: name, SourceType: colType}
	switch dataType {
	case "tinyint", "smallint", "mediumint", "int", "integer", "year", "bit":
		col.Kind = cdc.KindInt
	case "bigint":
		col.Kind = cdc.KindInt
		if info.unsigned {
			col.Kind = cdc.KindDecimal
		}
	case "decimal", "numeric", "dec", "fixed":
		col.Kind = cdc.KindDecimal
	case "float":
		col.Kind, info.isFloat = cdc.KindFloat, true
	case "double", "real", "double precision":
		col.Kind = cdc.KindFloat
	case "date":
		col.Kind = cdc.KindDate
	case "datetime":
		col.Kind = cdc.KindTimestamp
	case "timestamp":
		col.Kind = cdc.KindTimestampTZ
	case "time":
		col.Kind = cdc.KindTime
	case "char", "varchar", "tinytext", "text", "mediumtext", "longtext":
		col.Kind = cdc.KindText
		if isJSON {
			col.Kind, col.SourceType = cdc.KindJSON, "json"
		}
	case "binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob", "vector":
		col.Kind = cdc.KindBytes
		if dataType == "binary" {
			info.fixedLen = octets
		}
	case "json":
		col.Kind = cdc.KindJSON
	case "enum":
		col.Kind = cdc.KindEnum
		info.labels = parseLabels(colType)
	case "set":
		col.Kind = cdc.KindText
		info.labels = parseLabels(colType)
	case "geometry", "point", "linestring", "polygon", "multipoint", "multilinestring", "multipolygon", "geometrycollection", "geomcollection":
		col.Kind = cdc.KindBytes
	default:
		return col, info, configError("read table "+table, fmt.Errorf("column %s has type %s, which the MySQL source cannot capture", name, colType),
			"change the column to a supported type (see the cdc/mysql package documentation) or leave the table out of the configuration")
	}
	switch strings.ToLower(charset) {
	case "", "binary", "utf8mb4", "utf8mb3", "utf8", "ascii":
	default:
		return col, info, configError("read table "+table, fmt.Errorf("column %s uses character set %s; the binlog carries its bytes unconverted and the source reads only UTF-8", name, charset),
			fmt.Sprintf("convert the table: ALTER TABLE ... CONVERT TO CHARACTER SET utf8mb4 (column %s)", name))
	}
	col.SQLiteType = col.Kind.SQLiteType()
	return col, info, nil
}

// parseLabels reads the labels of an ENUM or SET column type, e.g. enum('a','b'),
// undoing doubled quotes.
func parseLabels(colType string) []string {
	open := strings.IndexByte(colType, '(')
	if open < 0 {
		return nil
	}
	s := colType[open+1:]
	var labels []string
	for {
		if len(s) == 0 || s[0] != '\'' {
			return labels
		}
		var b strings.Builder
		i := 1
		for i < len(s) {
			if s[i] == '\'' {
				if i+1 < len(s) && s[i+1] == '\'' {
					b.WriteByte('\'')
					i += 2
					continue
				}
				break
			}
			if s[i] == '\\' && i+1 < len(s) {
				i++
			}
			b.WriteByte(s[i])
			i++
		}
		labels = append(labels, b.String())
		if i+1 >= len(s) || s[i+1] != ',' {
			return labels
		}
		s = s[i+2:]
	}
}

// realType is a table map column's type, with ENUM and SET (sent as STRING) told apart.
func realType(tm *replication.TableMapEvent, i int) byte {
	t := tm.ColumnType[i]
	if t == gomysql.MYSQL_TYPE_STRING && i < len(tm.ColumnMeta) {
		if meta := tm.ColumnMeta[i]; meta >= 256 {
			b0 := byte(meta >> 8)
			if b0&0x30 != 0x30 {
				return b0 | 0x30
			}
			return b0
		}
	}
	return t
}

// binlogTypeNames names binlog column types for definitions built from a table map.
var binlogTypeNames = map[byte]string{
	gomysql.MYSQL_TYPE_TINY: "tinyint", gomysql.MYSQL_TYPE_SHORT: "smallint", gomysql.MYSQL_TYPE_INT24: "mediumint",
	gomysql.MYSQL_TYPE_LONG: "int", gomysql.MYSQL_TYPE_LONGLONG: "bigint", gomysql.MYSQL_TYPE_NEWDECIMAL: "decimal",
	gomysql.MYSQL_TYPE_FLOAT: "float", gomysql.MYSQL_TYPE_DOUBLE: "double", gomysql.MYSQL_TYPE_DATE: "date",
	gomysql.MYSQL_TYPE_NEWDATE: "date", gomysql.MYSQL_TYPE_DATETIME: "datetime", gomysql.MYSQL_TYPE_DATETIME2: "datetime",
	gomysql.MYSQL_TYPE_TIMESTAMP: "timestamp", gomysql.MYSQL_TYPE_TIMESTAMP2: "timestamp", gomysql.MYSQL_TYPE_TIME: "time",
	gomysql.MYSQL_TYPE_TIME2: "time", gomysql.MYSQL_TYPE_YEAR: "year", gomysql.MYSQL_TYPE_VARCHAR: "varchar",
	gomysql.MYSQL_TYPE_VAR_STRING: "varchar", gomysql.MYSQL_TYPE_STRING: "char", gomysql.MYSQL_TYPE_BLOB: "text",
	gomysql.MYSQL_TYPE_JSON: "json", gomysql.MYSQL_TYPE_ENUM: "enum", gomysql.MYSQL_TYPE_SET: "set",
	gomysql.MYSQL_TYPE_BIT: "bit", gomysql.MYSQL_TYPE_GEOMETRY: "geometry", gomysql.MYSQL_TYPE_VECTOR: "vector",
}

// compatible reports whether binlog type t can carry values of a column known as info.
func (info *colInfo) compatible(t byte) bool {
	if info.mapType != 0 {
		return info.mapType == t
	}
	want, ok := binlogTypeNames[t]
	if !ok {
		return false
	}
	switch info.dataType {
	case "integer":
		return want == "int"
	case "numeric", "dec", "fixed":
		return want == "decimal"
	case "real", "double precision":
		return want == "double"
	case "binary":
		return want == "char"
	case "varbinary":
		return want == "varchar"
	case "tinytext", "mediumtext", "longtext", "tinyblob", "blob", "mediumblob", "longblob":
		return want == "text"
	case "point", "linestring", "polygon", "multipoint", "multilinestring", "multipolygon", "geometrycollection", "geomcollection":
		return want == "geometry"
	}
	return want == info.dataType
}

// columnFromMap builds a column of a table map the catalog did not describe (a column
// added by DDL the stream has not caught up with the catalog for).
func columnFromMap(tm *replication.TableMapEvent, i int, name string) (cdc.Column, colInfo) {
	t := realType(tm, i)
	info := colInfo{dataType: binlogTypeNames[t], mapType: t, unsigned: tm.UnsignedMap()[i]}
	col := cdc.Column{Name: name, SourceType: info.dataType, Nullable: true}
	if available, nullable := tm.Nullable(i); available {
		col.Nullable = nullable
	}
	binaryCharset := tm.CollationMap()[i] == binaryCollation
	switch t {
	case gomysql.MYSQL_TYPE_TINY, gomysql.MYSQL_TYPE_SHORT, gomysql.MYSQL_TYPE_INT24, gomysql.MYSQL_TYPE_LONG,
		gomysql.MYSQL_TYPE_YEAR, gomysql.MYSQL_TYPE_BIT:
		col.Kind = cdc.KindInt
	case gomysql.MYSQL_TYPE_LONGLONG:
		col.Kind = cdc.KindInt
		if info.unsigned {
			col.Kind = cdc.KindDecimal
		}
	case gomysql.MYSQL_TYPE_NEWDECIMAL:
		col.Kind = cdc.KindDecimal
		if i < len(tm.ColumnMeta) {
			m := tm.ColumnMeta[i]
			col.SourceType = "decimal(" + strconv.Itoa(int(m>>8)) + "," + strconv.Itoa(int(m&0xff)) + ")"
		}
	case gomysql.MYSQL_TYPE_FLOAT:
		col.Kind, info.isFloat = cdc.KindFloat, true
	case gomysql.MYSQL_TYPE_DOUBLE:
		col.Kind = cdc.KindFloat
	case gomysql.MYSQL_TYPE_DATE, gomysql.MYSQL_TYPE_NEWDATE:
		col.Kind = cdc.KindDate
	case gomysql.MYSQL_TYPE_DATETIME, gomysql.MYSQL_TYPE_DATETIME2:
		col.Kind = cdc.KindTimestamp
	case gomysql.MYSQL_TYPE_TIMESTAMP, gomysql.MYSQL_TYPE_TIMESTAMP2:
		col.Kind = cdc.KindTimestampTZ
	case gomysql.MYSQL_TYPE_TIME, gomysql.MYSQL_TYPE_TIME2:
		col.Kind = cdc.KindTime
	case gomysql.MYSQL_TYPE_JSON:
		col.Kind = cdc.KindJSON
	case gomysql.MYSQL_TYPE_ENUM:
		col.Kind = cdc.KindEnum
		info.labels = tm.EnumStrValueMap()[i]
	case gomysql.MYSQL_TYPE_SET:
		col.Kind = cdc.KindText
		info.labels = tm.SetStrValueMap()[i]
	case gomysql.MYSQL_TYPE_VARCHAR, gomysql.MYSQL_TYPE_VAR_STRING, gomysql.MYSQL_TYPE_STRING, gomysql.MYSQL_TYPE_BLOB:
		col.Kind = cdc.KindText
		if binaryCharset {
			col.Kind = cdc.KindBytes
			switch t {
			case gomysql.MYSQL_TYPE_STRING:
				info.dataType, col.SourceType = "binary", "binary"
				if i < len(tm.ColumnMeta) {
					info.fixedLen = stringColumnLength(tm.ColumnMeta[i])
				}
			case gomysql.MYSQL_TYPE_BLOB:
				info.dataType, col.SourceType = "blob", "blob"
			default:
				info.dataType, col.SourceType = "varbinary", "varbinary"
			}
		}
	default:
		col.Kind = cdc.KindBytes
	}
	col.SQLiteType = col.Kind.SQLiteType()
	return col, info
}

// stringColumnLength is the byte length of a CHAR/BINARY column from its table map meta.
func stringColumnLength(meta uint16) int {
	if meta < 256 {
		return int(meta)
	}
	b0, b1 := byte(meta>>8), byte(meta&0xff)
	if b0&0x30 != 0x30 {
		return int(uint16(b1) | uint16((b0&0x30)^0x30)<<4)
	}
	return int(b1)
}

// defFromMap reconciles a table map with the known definition of a captured table. It
// returns the known definition when the map matches it; otherwise a new definition:
// columns that kept their name and type keep what the catalog said about them, others
// are described from the map. changed reports whether the columns differ as the change
// log sees them. The primary key comes from the map when it carries one.
func defFromMap(known *tableDef, tm *replication.TableMapEvent) (def *tableDef, changed bool, err error) {
	names := tm.ColumnNameString()
	if len(names) != int(tm.ColumnCount) {
		return nil, false, configError("stream", fmt.Errorf("the binlog's table map for %s carries no column names", known.table.Name),
			"SET GLOBAL binlog_row_metadata = FULL (and in the server's configuration file)")
	}
	if len(names) == len(known.cols) {
		same := true
		for i, n := range names {
			if n != known.table.Columns[i].Name || !known.cols[i].compatible(realType(tm, i)) {
				same = false
				break
			}
		}
		if same {
			for i := range known.cols {
				t := realType(tm, i)
				known.cols[i].mapType = t
				if t == gomysql.MYSQL_TYPE_ENUM || t == gomysql.MYSQL_TYPE_SET {
					if l := labelsFromMap(tm, i, t); l != nil {
						known.cols[i].labels = l
					}
				}
			}
			return known, false, nil
		}
	}
	def = &tableDef{db: known.db, name: known.name, table: cdc.Table{Name: known.table.Name}}
	for i, n := range names {
		t := realType(tm, i)
		if j := columnIndex(&known.table, n); j >= 0 && known.cols[j].compatible(t) {
			info := known.cols[j]
			info.mapType = t
			if l := labelsFromMap(tm, i, t); l != nil {
				info.labels = l
			}
			def.table.Columns = append(def.table.Columns, known.table.Columns[j])
			def.cols = append(def.cols, info)
			continue
		}
		col, info := columnFromMap(tm, i, n)
		def.table.Columns = append(def.table.Columns, col)
		def.cols = append(def.cols, info)
	}
	if pk := tm.PrimaryKey; len(pk) > 0 {
		for _, i := range pk {
			if int(i) < len(names) {
				def.table.PrimaryKey = append(def.table.PrimaryKey, names[i])
			}
		}
	} else {
		def.table.PrimaryKey = append([]string(nil), known.table.PrimaryKey...)
	}
	if err := def.table.Validate(); err != nil {
		return nil, false, configError("stream", err, fmt.Sprintf("give %s a primary key again", known.qualified()))
	}
	changed = !cdc.SameColumns(&known.table, &def.table)
	return def, changed, nil
}

func labelsFromMap(tm *replication.TableMapEvent, i int, t byte) []string {
	switch t {
	case gomysql.MYSQL_TYPE_ENUM:
		return tm.EnumStrValueMap()[i]
	case gomysql.MYSQL_TYPE_SET:
		return tm.SetStrValueMap()[i]
	}
	return nil
}

func columnIndex(t *cdc.Table, name string) int {
	for i := range t.Columns {
		if t.Columns[i].Name == name {
			return i
		}
	}
	return -1
}
