// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

import {IERC20Minimal} from "./IERC20Minimal.sol";

/// The logic behind every deposit address. Each deposit address is an EIP-1167
/// clone that delegates here, so `address(this)` is the clone holding the funds
/// and `factory` (an immutable in this code) is the only caller allowed.
contract DepositForwarder {
    address public immutable factory;

    constructor() {
        factory = msg.sender;
    }

    /// Moves this deposit address's whole `token` balance to `to`; returns the amount.
    /// Accepts tokens whose `transfer` returns nothing (USDT) as well as `true`.
    function sweep(address token, address to) external returns (uint256 amount) {
        require(msg.sender == factory, "only factory");
        // A token without code fails here: decoding balanceOf's empty answer reverts.
        amount = IERC20Minimal(token).balanceOf(address(this));
        if (amount == 0) return 0;
        (bool ok, bytes memory ret) = token.call(abi.encodeWithSelector(0xa9059cbb, to, amount));
        require(ok && (ret.length == 0 || abi.decode(ret, (bool))), "token transfer failed");
    }
}
