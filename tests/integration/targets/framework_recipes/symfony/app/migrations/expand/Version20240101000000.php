<?php

declare(strict_types=1);

namespace DoctrineMigrations\Expand;

use Doctrine\DBAL\Schema\Schema;
use Doctrine\Migrations\AbstractMigration;

// expand (namespace DoctrineMigrations\Expand): new tables the release before never read.
final class Version20240101000000 extends AbstractMigration
{
    public function up(Schema $schema): void
    {
        $this->addSql('CREATE TABLE messages (id INTEGER PRIMARY KEY AUTOINCREMENT, body VARCHAR(255) NOT NULL)');
        $this->addSql("INSERT INTO messages (body) VALUES ('written by the v1 migration')");
        $this->addSql('CREATE TABLE legacy_hits (id INTEGER PRIMARY KEY AUTOINCREMENT)');
    }

    public function down(Schema $schema): void
    {
        $this->addSql('DROP TABLE legacy_hits');
        $this->addSql('DROP TABLE messages');
    }
}
