// Package mysql captures changes from MySQL 8 and MariaDB 10.x through the row-based
// binary log (github.com/go-mysql-org/go-mysql) and writes edge changes back.
package mysql
