<?php

namespace StandIn\Command;

use StandIn\Migrations;
use Symfony\Component\Console\Command\Command;
use Symfony\Component\Console\Helper\Table;
use Symfony\Component\Console\Helper\TableCell;
use Symfony\Component\Console\Input\InputInterface;
use Symfony\Component\Console\Output\OutputInterface;

/** Stand-in for doctrine:migrations:list (see standin/README.md). */
class MigrationsListCommand extends Command
{
    protected static $defaultName = 'doctrine:migrations:list';
    private $migrations;

    public function __construct(string $databaseUrl, array $paths)
    {
        $this->migrations = new Migrations($databaseUrl, $paths);
        parent::__construct();
    }

    protected function execute(InputInterface $input, OutputInterface $output): int
    {
        $available = $this->migrations->available();
        $executed = $this->migrations->executed();
        $versions = array_unique(array_merge(array_keys($available), array_keys($executed)));
        sort($versions, SORT_STRING);
        $table = new Table($output);
        $table->setHeaders([
            [new TableCell('Migration Versions', ['colspan' => 4])],
            ['Migration', 'Status', 'Migrated At', 'Execution Time', 'Description'],
        ]);
        foreach ($versions as $version) {
            [$at, $ms] = $executed[$version] ?? ['', null];
            $status = isset($executed[$version])
                ? (isset($available[$version]) ? '<info>migrated</info>' : '<error>migrated, not available</error>')
                : '<comment>not migrated</comment>';
            $table->addRow([$version, $status, (string) $at, $ms === null ? '' : ($ms / 1000).'s', '']);
        }
        $table->render();

        return 0;
    }
}
