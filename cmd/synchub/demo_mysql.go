package main

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"time"

	_ "github.com/go-mysql-org/go-mysql/driver" // database/sql driver "mysql"

	"github.com/synchub/synchub/cdc/mysql/myserver"
)

// demoMySQLSchema is the sample database for `synchub demo --source mysql`: the same two
// tables as the PostgreSQL demo, using every type the MySQL/MariaDB source maps.
const demoMySQLSchema = `
CREATE TABLE customers (
    id        BIGINT UNSIGNED PRIMARY KEY,
    name      VARCHAR(200) NOT NULL,
    email     VARCHAR(200),
    tier      ENUM('bronze','silver','gold') NOT NULL DEFAULT 'bronze',
    channels  SET('mail','sms','push') NOT NULL DEFAULT '',
    balance   DECIMAL(20,4) NOT NULL DEFAULT 0,
    lifetime  BIGINT UNSIGNED NOT NULL DEFAULT 0,
    score     DOUBLE,
    rating    FLOAT,
    visits    INT NOT NULL DEFAULT 0,
    floor     TINYINT,
    active    TINYINT UNSIGNED NOT NULL DEFAULT 1,
    code      CHAR(4),
    avatar    VARBINARY(64),
    prefs     JSON,
    birthday  DATE,
    opens_at  TIME,
    since     YEAR,
    flags     BIT(8),
    created   DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    updated   TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6)
) ENGINE=InnoDB;
CREATE TABLE orders (
    id          BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY,
    customer_id BIGINT UNSIGNED NOT NULL,
    total       DECIMAL(12,2) NOT NULL,
    status      VARCHAR(20) NOT NULL DEFAULT 'new',
    placed_at   TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    notes       TEXT,
    CONSTRAINT orders_customer FOREIGN KEY (customer_id) REFERENCES customers (id)
) ENGINE=InnoDB;
`

// demoMySQLDatabase is the database the MySQL demo creates its tables in.
const demoMySQLDatabase = "shop"

// startDemoMySQL starts a throwaway MariaDB and returns its source URL and a stop func.
func startDemoMySQL(ctx context.Context) (string, func(), error) {
	srv, err := myserver.Start(ctx, myserver.Options{})
	if err != nil {
		return "", nil, err
	}
	if err := srv.Exec(ctx, "", "CREATE DATABASE IF NOT EXISTS "+demoMySQLDatabase+" CHARACTER SET utf8mb4"); err != nil {
		srv.Stop()
		return "", nil, err
	}
	return srv.URL(demoMySQLDatabase), func() { srv.Stop() }, nil
}

// mysqlDriverDSN turns a mysql:// URL into the database/sql driver's DSN.
func mysqlDriverDSN(url string) string { return strings.TrimPrefix(url, "mysql://") }

func setupDemoMySQL(ctx context.Context, url string) error {
	db, err := sql.Open("mysql", mysqlDriverDSN(url))
	if err != nil {
		return fmt.Errorf("connect to MySQL: %w", err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM information_schema.TABLES
		WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'customers'`).Scan(&n); err != nil {
		return fmt.Errorf("inspect demo schema: %w", err)
	}
	if n > 0 {
		return nil
	}
	for _, stmt := range myserver.SplitStatements(demoMySQLSchema) {
		if _, err := db.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("create demo schema: %w", err)
		}
	}
	r := rand.New(rand.NewPCG(1, 2))
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	for i := 1; i <= 50; i++ {
		if err := insertMySQLCustomer(ctx, tx, r, int64(i)); err != nil {
			return err
		}
	}
	return tx.Commit()
}

func insertMySQLCustomer(ctx context.Context, tx *sql.Tx, r *rand.Rand, id int64) error {
	name := demoNames[r.IntN(len(demoNames))]
	avatar := make([]byte, 16)
	for i := range avatar {
		avatar[i] = byte(r.IntN(256))
	}
	avatar[3] = 0
	_, err := tx.ExecContext(ctx, `INSERT INTO customers
		(id, name, email, tier, channels, balance, lifetime, score, rating, visits, floor, active,
		 code, avatar, prefs, birthday, opens_at, since, flags)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		id, fmt.Sprintf("%s #%d 🚀", name, id), fmt.Sprintf("%s%d@example.com", strings.ToLower(name), id),
		[]string{"bronze", "silver", "gold"}[r.IntN(3)], []string{"", "mail", "mail,sms", "sms,push"}[r.IntN(4)],
		fmt.Sprintf("%d.%04d", r.IntN(100000), r.IntN(10000)),
		fmt.Sprint(uint64(18_000_000_000_000_000_000)+uint64(r.Int64N(400_000_000_000_000_000))),
		r.Float64()*100, float32(r.Float64()*5), r.IntN(100), r.IntN(40), r.IntN(2),
		fmt.Sprintf("C%03d", id%1000), avatar,
		fmt.Sprintf(`{"theme": "dark", "lang": "en", "n": %d}`, id),
		fmt.Sprintf("19%02d-%02d-%02d", 50+r.IntN(50), 1+r.IntN(12), 1+r.IntN(28)),
		fmt.Sprintf("%02d:%02d:00", 6+r.IntN(4), r.IntN(60)), 1990+r.IntN(30), r.IntN(256))
	if err != nil {
		return fmt.Errorf("insert customer %d: %w", id, err)
	}
	return nil
}

// demoMySQLWorkload is demoWorkload for MySQL/MariaDB.
func demoMySQLWorkload(ctx context.Context, url string, rate float64, txs *atomic.Int64) error {
	db, err := sql.Open("mysql", mysqlDriverDSN(url))
	if err != nil {
		return fmt.Errorf("workload: %w", err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	var nextCustomer int64
	if err := db.QueryRowContext(ctx, `SELECT COALESCE(MAX(id), 0) + 1 FROM customers`).Scan(&nextCustomer); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("workload: %w", err)
	}
	r := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	tick := time.NewTicker(time.Duration(float64(time.Second) / rate))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		err := mysqlTx(ctx, db, func(tx *sql.Tx) error {
			customer := 1 + r.Int64N(nextCustomer-1)
			switch n := r.IntN(10); {
			case n < 4:
				_, err := tx.ExecContext(ctx, `INSERT INTO orders (customer_id, total, notes) VALUES (?, ?, ?)`,
					customer, fmt.Sprintf("%d.%02d", r.IntN(500), r.IntN(100)), "order from the demo ✓")
				return err
			case n < 6:
				_, err := tx.ExecContext(ctx, `UPDATE orders SET status = ? ORDER BY RAND() LIMIT 1`,
					[]string{"paid", "shipped", "delivered"}[r.IntN(3)])
				return err
			case n < 7:
				_, err := tx.ExecContext(ctx, `UPDATE customers SET balance = balance + ?, visits = visits + 1 WHERE id = ?`,
					fmt.Sprintf("%d.%04d", r.IntN(100), r.IntN(10000)), customer)
				return err
			case n < 8:
				_, err := tx.ExecContext(ctx, `DELETE FROM orders WHERE status = 'delivered' ORDER BY id LIMIT 1`)
				return err
			case n < 9:
				nextCustomer++
				return insertMySQLCustomer(ctx, tx, r, nextCustomer-1)
			default:
				// One source transaction of three statements: an edge shows all or none.
				res, err := tx.ExecContext(ctx, `INSERT INTO orders (customer_id, total, status) VALUES (?, 10.00, 'paid')`, customer)
				if err != nil {
					return err
				}
				id, err := res.LastInsertId()
				if err != nil {
					return err
				}
				if _, err := tx.ExecContext(ctx, `UPDATE customers SET balance = balance - 10 WHERE id = ?`, customer); err != nil {
					return err
				}
				_, err = tx.ExecContext(ctx, `UPDATE orders SET notes = 'paid from balance' WHERE id = ?`, id)
				return err
			}
		})
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("workload: %w", err)
		}
		txs.Add(1)
	}
}

func mysqlTx(ctx context.Context, db *sql.DB, fn func(*sql.Tx) error) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}
