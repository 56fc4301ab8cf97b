<?php

namespace App\Controller;

use Symfony\Component\HttpFoundation\Response;
use Symfony\Component\HttpKernel\KernelInterface;

// One line per fact the test checks: the release (a parameter of the compiled container), the
// file the compiled container was loaded from, and the rows of the migrated tables.
class HomeController
{
    private $kernel;
    private $release;
    private $databaseUrl;

    public function __construct(KernelInterface $kernel, string $release, string $databaseUrl)
    {
        $this->kernel = $kernel;
        $this->release = $release;
        $this->databaseUrl = $databaseUrl;
    }

    public function __invoke(): Response
    {
        $pdo = new \PDO('sqlite:'.substr($this->databaseUrl, strlen('sqlite:///')));
        $tables = $pdo->query("SELECT name FROM sqlite_master WHERE type = 'table'")->fetchAll(\PDO::FETCH_COLUMN);
        $rows = function ($table) use ($pdo, $tables) {
            return in_array($table, $tables, true)
                ? implode(', ', $pdo->query("SELECT body FROM $table ORDER BY id")->fetchAll(\PDO::FETCH_COLUMN))
                : 'no table';
        };

        return new Response(implode("\n", [
            'symfony release '.$this->release,
            'container: '.(new \ReflectionClass($this->kernel->getContainer()))->getFileName(),
            'messages: '.$rows('messages'),
            'labels: '.$rows('labels'),
            'legacy table: '.(in_array('legacy_hits', $tables, true) ? 'yes' : 'no'),
        ])."\n", 200, ['Content-Type' => 'text/plain']);
    }
}
