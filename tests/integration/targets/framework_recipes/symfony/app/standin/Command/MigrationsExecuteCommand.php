<?php

namespace StandIn\Command;

use Doctrine\DBAL\Schema\Schema;
use StandIn\Migrations;
use Symfony\Component\Console\Command\Command;
use Symfony\Component\Console\Input\InputArgument;
use Symfony\Component\Console\Input\InputInterface;
use Symfony\Component\Console\Input\InputOption;
use Symfony\Component\Console\Output\OutputInterface;

/** Stand-in for doctrine:migrations:execute (see standin/README.md). */
class MigrationsExecuteCommand extends Command
{
    protected static $defaultName = 'doctrine:migrations:execute';
    private $migrations;

    public function __construct(string $databaseUrl, array $paths)
    {
        $this->migrations = new Migrations($databaseUrl, $paths);
        parent::__construct();
    }

    protected function configure(): void
    {
        $this->addArgument('versions', InputArgument::REQUIRED | InputArgument::IS_ARRAY)
            ->addOption('up', null, InputOption::VALUE_NONE)
            ->addOption('down', null, InputOption::VALUE_NONE);
    }

    protected function execute(InputInterface $input, OutputInterface $output): int
    {
        $down = (bool) $input->getOption('down');
        $available = $this->migrations->available();
        $pdo = $this->migrations->pdo();
        $this->migrations->ensureInitialized();
        foreach ($input->getArgument('versions') as $version) {
            if (!isset($available[$version])) {
                $output->writeln(sprintf('<error>Could not find migration version %s</error>', $version));

                return 1;
            }
            $migration = new $version();
            $start = microtime(true);
            try {
                $down ? $migration->down(new Schema()) : $migration->up(new Schema());
                $pdo->beginTransaction();
                foreach ($migration->takeSql() as $sql) {
                    $pdo->exec($sql);
                }
                if ($down) {
                    $pdo->prepare('DELETE FROM '.Migrations::TABLE.' WHERE version = ?')->execute([$version]);
                } else {
                    $pdo->prepare('INSERT INTO '.Migrations::TABLE.' VALUES (?, ?, ?)')
                        ->execute([$version, gmdate('Y-m-d H:i:s'), (int) ((microtime(true) - $start) * 1000)]);
                }
                $pdo->commit();
            } catch (\Throwable $e) {
                if ($pdo->inTransaction()) {
                    $pdo->rollBack();
                }
                $output->writeln(sprintf('<error>Migration %s failed during Execution. Error: "%s"</error>', $version, $e->getMessage()));

                return 1;
            }
            $output->writeln(sprintf('  <info>++</info> migrated %s %s', $version, $down ? 'down' : 'up'));
        }
        $output->writeln(sprintf('[OK] Successfully migrated version(s): %s: [%s]', implode(', ', $input->getArgument('versions')), $down ? 'DOWN' : 'UP'));

        return 0;
    }
}
