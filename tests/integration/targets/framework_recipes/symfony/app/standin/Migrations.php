<?php

namespace StandIn;

/** Stand-in (see README.md): the available migrations and the metadata table, on PDO SQLite. */
class Migrations
{
    public const TABLE = 'doctrine_migration_versions';

    private $pdo;
    private $paths;

    public function __construct(string $databaseUrl, array $paths)
    {
        $this->pdo = new \PDO('sqlite:'.substr($databaseUrl, strlen('sqlite:///')));
        $this->pdo->setAttribute(\PDO::ATTR_ERRMODE, \PDO::ERRMODE_EXCEPTION);
        $this->paths = $paths;
    }

    public function pdo(): \PDO
    {
        return $this->pdo;
    }

    /** @return array<string, string> FQCN => file of every migration class found */
    public function available(): array
    {
        $found = [];
        foreach ($this->paths as $namespace => $dir) {
            foreach (glob($dir.'/Version*.php') ?: [] as $file) {
                $found[$namespace.'\\'.basename($file, '.php')] = $file;
            }
        }

        return $found;
    }

    /** @return array<string, array{string, int}> FQCN => [executed at, execution time] */
    public function executed(): array
    {
        $tables = $this->pdo->query("SELECT name FROM sqlite_master WHERE type = 'table'")->fetchAll(\PDO::FETCH_COLUMN);
        if (!in_array(self::TABLE, $tables, true)) {
            return [];
        }
        $done = [];
        foreach ($this->pdo->query('SELECT version, executed_at, execution_time FROM '.self::TABLE) as $row) {
            $done[$row['version']] = [$row['executed_at'], (int) $row['execution_time']];
        }

        return $done;
    }

    public function ensureInitialized(): void
    {
        $this->pdo->exec('CREATE TABLE IF NOT EXISTS '.self::TABLE.' (version VARCHAR(191) NOT NULL PRIMARY KEY, '
            .'executed_at DATETIME DEFAULT NULL, execution_time INTEGER DEFAULT NULL)');
    }
}
