// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

/// A Chainlink AggregatorV3-compatible feed whose answer a devnet sets by hand.
contract MockPriceFeed {
    uint8 public immutable decimals;
    string public description;
    uint256 public constant version = 4;

    uint80 private round;
    int256 private answer;
    uint256 private updated;

    constructor(uint8 decimals_, string memory description_, int256 initialAnswer) {
        decimals = decimals_;
        description = description_;
        _set(initialAnswer, block.timestamp);
    }

    /// Sets the answer as if published at `updatedAt` (unix seconds; 0 means now).
    function setAnswer(int256 newAnswer, uint256 updatedAt) external {
        _set(newAnswer, updatedAt == 0 ? block.timestamp : updatedAt);
    }

    function latestRoundData()
        external
        view
        returns (uint80 roundId, int256 value, uint256 startedAt, uint256 updatedAt, uint80 answeredInRound)
    {
        return (round, answer, updated, updated, round);
    }

    function _set(int256 newAnswer, uint256 at) private {
        round += 1;
        answer = newAnswer;
        updated = at;
    }
}
