<?php

declare(strict_types=1);

namespace DoctrineMigrations\Contract;

use Doctrine\DBAL\Schema\Schema;
use Doctrine\Migrations\AbstractMigration;

// v2's contract migration (namespace DoctrineMigrations\Contract): drops what only v1 used,
// once every host runs v2; down() brings it back for a rollback to v1.
final class Version20240201000001 extends AbstractMigration
{
    public function up(Schema $schema): void
    {
        $this->addSql('DROP TABLE legacy_hits');
    }

    public function down(Schema $schema): void
    {
        $this->addSql('CREATE TABLE legacy_hits (id INTEGER PRIMARY KEY AUTOINCREMENT)');
    }
}
