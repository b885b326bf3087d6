// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

/// The ERC20 reads the deposit contracts need. `transfer` is called low-level
/// elsewhere, because USDT's returns nothing.
interface IERC20Minimal {
    function balanceOf(address owner) external view returns (uint256);
}
