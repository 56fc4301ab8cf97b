<?php

declare(strict_types=1);

namespace DoctrineMigrations\Expand;

use Doctrine\DBAL\Schema\Schema;
use Doctrine\Migrations\AbstractMigration;

// v2's expand migration: a new table (v1 keeps working while it exists).
final class Version20240201000000 extends AbstractMigration
{
    public function up(Schema $schema): void
    {
        $this->addSql('CREATE TABLE labels (id INTEGER PRIMARY KEY AUTOINCREMENT, body VARCHAR(255) NOT NULL)');
        $this->addSql("INSERT INTO labels (body) VALUES ('written by the v2 migration')");
    }

    public function down(Schema $schema): void
    {
        $this->addSql('DROP TABLE labels');
    }
}
