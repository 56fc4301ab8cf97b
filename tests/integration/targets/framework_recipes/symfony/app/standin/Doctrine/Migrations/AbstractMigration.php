<?php

namespace Doctrine\Migrations;

use Doctrine\DBAL\Schema\Schema;
use Doctrine\Migrations\Exception\IrreversibleMigration;

/** Stand-in (see standin/README.md): what the migrations in migrations/ use of the real class. */
abstract class AbstractMigration
{
    private $sql = [];

    abstract public function up(Schema $schema): void;

    public function down(Schema $schema): void
    {
        $this->throwIrreversibleMigrationException();
    }

    public function getDescription(): string
    {
        return '';
    }

    protected function addSql(string $sql): void
    {
        $this->sql[] = $sql;
    }

    protected function throwIrreversibleMigrationException(?string $message = null): void
    {
        throw new IrreversibleMigration($message ?? 'This migration is irreversible and cannot be reverted.');
    }

    /** @internal the stand-in's execute command: the statements up() or down() added */
    public function takeSql(): array
    {
        [$sql, $this->sql] = [$this->sql, []];

        return $sql;
    }
}
